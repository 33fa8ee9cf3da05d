//! Personal values in a type that cannot leak into logs, traces or error bodies.

use std::fmt;

/// Wraps a personal value. `Debug` and `Display` print `<redacted>`; there is no
/// `Serialize`, so it cannot end up in a JSON body by accident. Read it with
/// [`Personal::expose`] at the one place that needs the value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Personal<T> {
        Personal(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Personal<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Personal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let p = Personal::new("13800138000".to_string());
        assert_eq!(format!("{p:?} {p}"), "<redacted> <redacted>");
        assert_eq!(p.expose(), "13800138000");
    }
}
