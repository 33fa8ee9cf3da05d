//! The demonstration catalog of `custos serve --demo`: bilingual items with drawn
//! product pictures, generated from a fixed seed (the same catalog on every machine),
//! nothing fetched from anywhere.

use custos_store::catalog::NewItem;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Items in the demonstration catalog.
pub const DEMO_ITEMS: usize = 240;
const SEED: u64 = 20_261_129;

#[derive(Clone, Copy)]
enum Shape {
    Dress,
    Box,
    Circle,
    Cup,
    Bottle,
    Shoe,
}

struct Kind {
    category: &'static str,
    zh: &'static str,
    en: &'static str,
    shape: Shape,
    /// Price range in yuan.
    price: (i64, i64),
}

const KINDS: &[Kind] = &[
    Kind {
        category: "clothing",
        zh: "连衣裙",
        en: "dress",
        shape: Shape::Dress,
        price: (89, 699),
    },
    Kind {
        category: "clothing",
        zh: "T恤",
        en: "T-shirt",
        shape: Shape::Dress,
        price: (39, 199),
    },
    Kind {
        category: "clothing",
        zh: "牛仔外套",
        en: "denim jacket",
        shape: Shape::Dress,
        price: (159, 899),
    },
    Kind {
        category: "shoes",
        zh: "运动鞋",
        en: "sneakers",
        shape: Shape::Shoe,
        price: (199, 1299),
    },
    Kind {
        category: "shoes",
        zh: "帆布鞋",
        en: "canvas shoes",
        shape: Shape::Shoe,
        price: (79, 399),
    },
    Kind {
        category: "electronics",
        zh: "蓝牙耳机",
        en: "wireless earbuds",
        shape: Shape::Circle,
        price: (99, 1999),
    },
    Kind {
        category: "electronics",
        zh: "智能手表",
        en: "smartwatch",
        shape: Shape::Box,
        price: (299, 3999),
    },
    Kind {
        category: "electronics",
        zh: "充电宝",
        en: "power bank",
        shape: Shape::Box,
        price: (59, 299),
    },
    Kind {
        category: "home",
        zh: "陶瓷茶杯",
        en: "ceramic teacup",
        shape: Shape::Cup,
        price: (29, 259),
    },
    Kind {
        category: "home",
        zh: "台灯",
        en: "desk lamp",
        shape: Shape::Circle,
        price: (69, 599),
    },
    Kind {
        category: "home",
        zh: "香薰蜡烛",
        en: "scented candle",
        shape: Shape::Cup,
        price: (39, 329),
    },
    Kind {
        category: "beauty",
        zh: "香水",
        en: "perfume",
        shape: Shape::Bottle,
        price: (199, 1599),
    },
    Kind {
        category: "beauty",
        zh: "面霜",
        en: "face cream",
        shape: Shape::Cup,
        price: (89, 899),
    },
    Kind {
        category: "food",
        zh: "绿茶礼盒",
        en: "green tea gift box",
        shape: Shape::Box,
        price: (49, 699),
    },
    Kind {
        category: "food",
        zh: "手工巧克力",
        en: "handmade chocolate",
        shape: Shape::Box,
        price: (39, 299),
    },
    Kind {
        category: "sports",
        zh: "瑜伽垫",
        en: "yoga mat",
        shape: Shape::Box,
        price: (59, 399),
    },
    Kind {
        category: "sports",
        zh: "保温水杯",
        en: "insulated bottle",
        shape: Shape::Bottle,
        price: (49, 329),
    },
];

const STYLES: &[(&str, &str, &str)] = &[
    ("夏季", "summer", "summer"),
    ("复古", "vintage", "vintage"),
    ("简约", "minimalist", "minimalist"),
    ("轻薄", "lightweight", "lightweight"),
    ("碎花", "floral", "floral"),
    ("经典", "classic", "classic"),
    ("北欧风", "Nordic", "nordic"),
    ("便携", "portable", "portable"),
    ("新款", "new-season", "new"),
];

const COLORS: &[(&str, &str, [u8; 3])] = &[
    ("红色", "red", [214, 48, 49]),
    ("蓝色", "blue", [9, 132, 227]),
    ("绿色", "green", [0, 184, 148]),
    ("黑色", "black", [45, 52, 54]),
    ("白色", "white", [236, 240, 241]),
    ("粉色", "pink", [253, 121, 168]),
    ("黄色", "yellow", [253, 203, 110]),
    ("紫色", "purple", [108, 92, 231]),
];

/// One generated item: what the store keeps and how to draw it.
pub struct DemoItem {
    pub item: NewItem,
    shape: Shape,
    color: [u8; 3],
    seed: u64,
}

/// The demonstration catalog, identical on every call.
pub fn items(count: usize) -> Vec<DemoItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    (0..count)
        .map(|i| {
            let kind = &KINDS[rng.gen_range(0..KINDS.len())];
            let style = STYLES[rng.gen_range(0..STYLES.len())];
            let color = COLORS[rng.gen_range(0..COLORS.len())];
            let lo = rng.gen_range(kind.price.0..=kind.price.1);
            let hi = if rng.gen_bool(0.3) {
                lo + rng.gen_range(10..=200)
            } else {
                lo
            };
            let en_title = format!("{} {} {}", capitalize(style.1), color.1, kind.en);
            DemoItem {
                item: NewItem {
                    external_id: Some(format!("demo-{:04}", i + 1)),
                    title_zh: format!("{}{}{}", style.0, color.0, kind.zh),
                    title_en: en_title.clone(),
                    description_zh: format!(
                        "{}{}，{}设计，适合日常使用。演示商品，仅供浏览。",
                        color.0, kind.zh, style.0
                    ),
                    description_en: format!(
                        "A {} {} in a {} style, made for every day. A demonstration item.",
                        color.1, kind.en, style.1
                    ),
                    category: kind.category.to_owned(),
                    tags: vec![style.2.to_owned(), color.1.to_owned()],
                    price_min: lo * 100 + 90 * i64::from(rng.gen_bool(0.5)),
                    price_max: hi * 100 + 90,
                    currency: "CNY".into(),
                },
                shape: kind.shape,
                color: color.2,
                seed: rng.gen(),
            }
        })
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

const W: u32 = 480;
const H: u32 = 360;

/// Draws the item's picture: a soft gradient and a simple product silhouette, as JPEG.
pub fn picture(d: &DemoItem) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(d.seed);
    let [r, g, b] = d.color;
    let tint = |c: u8, t: f32| (f32::from(c) * (1.0 - t) + 255.0 * t) as u8;
    let top = [tint(r, 0.85), tint(g, 0.85), tint(b, 0.85)];
    let bottom = [tint(r, 0.6), tint(g, 0.6), tint(b, 0.6)];
    let mut img = RgbImage::from_fn(W, H, |_, y| {
        let t = y as f32 / H as f32;
        let mix = |a: u8, b: u8| (f32::from(a) * (1.0 - t) + f32::from(b) * t) as u8;
        Rgb([
            mix(top[0], bottom[0]),
            mix(top[1], bottom[1]),
            mix(top[2], bottom[2]),
        ])
    });
    let (cx, cy) = (
        W as f32 / 2.0 + rng.gen_range(-30.0..30.0),
        H as f32 / 2.0 + 10.0,
    );
    let s = rng.gen_range(0.85..1.15f32);
    let body = Rgb(d.color);
    let dark = Rgb([r / 2, g / 2, b / 2]);
    // Shadow under the product.
    fill(
        &mut img,
        |x, y| {
            ((x - cx) / (130.0 * s)).powi(2) + ((y - (cy + 115.0 * s)) / (14.0 * s)).powi(2) <= 1.0
        },
        Rgb([tint(r, 0.4) / 2, tint(g, 0.4) / 2, tint(b, 0.4) / 2]),
    );
    match d.shape {
        Shape::Dress => {
            fill(
                &mut img,
                |x, y| {
                    let dy = y - (cy - 100.0 * s);
                    let half = 30.0 * s + dy * 0.45;
                    (0.0..=210.0 * s).contains(&dy) && (x - cx).abs() <= half
                },
                body,
            );
            fill(
                &mut img,
                |x, y| ((x - cx).abs() <= 45.0 * s) && ((y - (cy - 20.0 * s)).abs() <= 6.0 * s),
                dark,
            );
        }
        Shape::Box => {
            fill(
                &mut img,
                |x, y| (x - cx).abs() <= 110.0 * s && (y - cy).abs() <= 80.0 * s,
                body,
            );
            fill(
                &mut img,
                |x, y| (x - cx).abs() <= 110.0 * s && (y - (cy - 80.0 * s)).abs() <= 12.0 * s,
                dark,
            );
        }
        Shape::Circle => {
            fill(
                &mut img,
                |x, y| ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() <= 95.0 * s,
                body,
            );
            fill(
                &mut img,
                |x, y| ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() <= 40.0 * s,
                dark,
            );
        }
        Shape::Cup => {
            fill(
                &mut img,
                |x, y| (x - cx).abs() <= (75.0 - (y - cy) * 0.15) * s && (y - cy).abs() <= 85.0 * s,
                body,
            );
            fill(
                &mut img,
                |x, y| {
                    let d = ((x - (cx + 95.0 * s)).powi(2) + (y - cy).powi(2)).sqrt();
                    (28.0 * s..=42.0 * s).contains(&d) && x > cx + 60.0 * s
                },
                dark,
            );
        }
        Shape::Bottle => {
            fill(
                &mut img,
                |x, y| (x - cx).abs() <= 50.0 * s && (y - (cy + 20.0 * s)).abs() <= 90.0 * s,
                body,
            );
            fill(
                &mut img,
                |x, y| (x - cx).abs() <= 18.0 * s && (y - (cy - 95.0 * s)).abs() <= 25.0 * s,
                dark,
            );
        }
        Shape::Shoe => {
            fill(
                &mut img,
                |x, y| {
                    let dx = x - cx;
                    let dy = y - cy;
                    (-120.0 * s..=120.0 * s).contains(&dx)
                        && (dy <= 50.0 * s)
                        && (dy
                            >= -60.0 * s
                                + (dx + 120.0 * s).max(0.0) * 0.25 * f32::from(u8::from(dx > 0.0)))
                },
                body,
            );
            fill(
                &mut img,
                |x, y| (x - cx).abs() <= 125.0 * s && (y - (cy + 50.0 * s)).abs() <= 10.0 * s,
                dark,
            );
        }
    }
    // A highlight, so the shapes read as objects.
    let (hx, hy) = (cx - 35.0 * s, cy - 35.0 * s);
    blend(
        &mut img,
        |x, y| ((x - hx) / 22.0).powi(2) + ((y - hy) / 12.0).powi(2) <= 1.0,
        0.35,
    );
    let mut out = Vec::new();
    let encoded =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82).encode_image(&img);
    if encoded.is_err() {
        return Vec::new();
    }
    out
}

fn fill(img: &mut RgbImage, inside: impl Fn(f32, f32) -> bool, c: Rgb<u8>) {
    for (x, y, p) in img.enumerate_pixels_mut() {
        if inside(x as f32, y as f32) {
            *p = c;
        }
    }
}

fn blend(img: &mut RgbImage, inside: impl Fn(f32, f32) -> bool, t: f32) {
    for (x, y, p) in img.enumerate_pixels_mut() {
        if inside(x as f32, y as f32) {
            for ch in p.0.iter_mut() {
                *ch = (f32::from(*ch) * (1.0 - t) + 255.0 * t) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_bilingual_valid_and_the_same_every_time() {
        let a = items(DEMO_ITEMS);
        let b = items(DEMO_ITEMS);
        assert!(a.len() >= 200);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.item, y.item);
            assert!(!x.item.title_zh.is_empty() && !x.item.title_en.is_empty());
            assert!(x.item.price_min <= x.item.price_max);
        }
        assert!(a.iter().any(|d| d.item.title_zh.contains("连衣裙")));
        let categories: std::collections::BTreeSet<_> =
            a.iter().map(|d| d.item.category.as_str()).collect();
        assert!(categories.len() >= 6);
    }

    #[test]
    fn demo_pictures_are_real_images_and_deterministic() {
        let d = items(3);
        let p = picture(&d[2]);
        assert_eq!(p, picture(&items(3)[2]));
        let img = image::load_from_memory(&p).unwrap();
        assert_eq!((img.width(), img.height()), (W, H));
    }
}
