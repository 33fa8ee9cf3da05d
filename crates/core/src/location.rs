//! Location is kept only as a coarse present position (P8, L16): a geohash of at most
//! five characters (about 4.9 km x 4.9 km). Precise coordinates exist only on the stack
//! while they are coarsened.

/// The coarsest precision the declaration may store: 5 characters.
pub const MAX_PRECISION: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("latitude must be within -90..=90 and longitude within -180..=180")]
    OutOfRange,
}

/// Coarsens a position to a geohash of `precision` characters (clamped to 1..=5).
pub fn coarse_geohash(lat: f64, lon: f64, precision: usize) -> Result<String, LocationError> {
    if !(-90.0..=90.0).contains(&lat)
        || !(-180.0..=180.0).contains(&lon)
        || lat.is_nan()
        || lon.is_nan()
    {
        return Err(LocationError::OutOfRange);
    }
    geohash::encode(
        geohash::Coord { x: lon, y: lat },
        precision.clamp(1, MAX_PRECISION),
    )
    .map_err(|_| LocationError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_coarsened_to_at_most_five_characters() {
        let g = coarse_geohash(39.908_722, 116.397_499, 12).unwrap();
        assert_eq!(g, "wx4g0");
        assert!(coarse_geohash(91.0, 0.0, 5).is_err());
        assert!(coarse_geohash(f64::NAN, 0.0, 5).is_err());
    }
}
