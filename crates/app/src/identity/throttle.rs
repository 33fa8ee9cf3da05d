//! Limits against SMS pumping and guessing (L15): per phone, per client address, per
//! account. Events live in the database (keyed by a blind index of the limit and its
//! subject, so no phone or address is stored in clear), which makes the limits hold
//! across processes and lets tests move a fake clock through the windows.

use std::net::IpAddr;

use custos_store::identity as store;

use super::Identity;
use crate::{AppError, AppResult};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The longest window any limit uses; older events can go.
pub const LONGEST_WINDOW_MS: i64 = DAY_MS;

/// One limit: at most `max` events per `window_ms` for each key; `max = 0` is off.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Names the limit in its bucket, so one key under two limits counts separately.
    pub name: &'static str,
    pub max: u32,
    pub window_ms: i64,
    /// The stable error code a refusal carries.
    pub code: &'static str,
}

/// The key bytes for a client address; IPv6 addresses count per /64, since one host
/// usually holds a whole /64.
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as dual-stack listeners report IPv4
/// clients) counts as its IPv4 address, not as one shared /64.
pub fn ip_key(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
    }
}

impl Identity {
    fn bucket(&self, limit: &Limit, key: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(limit.name.len() + 1 + key.len());
        v.extend_from_slice(limit.name.as_bytes());
        v.push(0);
        v.extend_from_slice(key);
        self.kernel.ring.blind_index("throttle", &v).to_vec()
    }

    /// Counts one event against `limit` for `key`, or refuses with 429 and how long to wait.
    pub async fn hit(&self, limit: Limit, key: &[u8]) -> AppResult<()> {
        if limit.max == 0 {
            return Ok(());
        }
        let now = self.kernel.clock.now_ms();
        let bucket = self.bucket(&limit, key);
        match store::throttle_hit(
            &self.kernel.db,
            &bucket,
            i64::from(limit.max),
            now - limit.window_ms,
            now,
        )
        .await?
        {
            Ok(()) => Ok(()),
            Err(oldest) => Err(throttled(limit, oldest, now)),
        }
    }

    /// Refuses when `limit` is already reached for `key`, without counting an event
    /// (failures are counted separately with [`Identity::record_failure`]).
    pub async fn check(&self, limit: Limit, key: &[u8]) -> AppResult<()> {
        if limit.max == 0 {
            return Ok(());
        }
        let now = self.kernel.clock.now_ms();
        let bucket = self.bucket(&limit, key);
        let (count, oldest) =
            store::throttle_count(&self.kernel.db, &bucket, now - limit.window_ms).await?;
        if count >= i64::from(limit.max) {
            return Err(throttled(limit, oldest.unwrap_or(now), now));
        }
        Ok(())
    }

    /// Counts a failure against `limit` for `key`.
    pub async fn record_failure(&self, limit: Limit, key: &[u8]) -> AppResult<()> {
        if limit.max == 0 {
            return Ok(());
        }
        let bucket = self.bucket(&limit, key);
        store::throttle_record(&self.kernel.db, &bucket, self.kernel.clock.now_ms()).await?;
        Ok(())
    }

    /// Takes back the newest event counted against `limit` for `key` (an attempt that
    /// turned out not to be a failure).
    pub async fn forget_hit(&self, limit: Limit, key: &[u8]) -> AppResult<()> {
        if limit.max == 0 {
            return Ok(());
        }
        let bucket = self.bucket(&limit, key);
        store::throttle_forget_newest(&self.kernel.db, &bucket).await?;
        Ok(())
    }

    pub(crate) fn limit_phone_minute(&self) -> Limit {
        Limit {
            name: "sms/phone/minute",
            max: self.cfg.sms_per_phone_per_minute,
            window_ms: MINUTE_MS,
            code: "too_many_codes",
        }
    }
    pub(crate) fn limit_phone_day(&self) -> Limit {
        Limit {
            name: "sms/phone/day",
            max: self.cfg.sms_per_phone_per_day,
            window_ms: DAY_MS,
            code: "too_many_codes",
        }
    }
    pub(crate) fn limit_ip_hour(&self) -> Limit {
        Limit {
            name: "sms/ip/hour",
            max: self.cfg.sms_per_ip_per_hour,
            window_ms: HOUR_MS,
            code: "too_many_codes",
        }
    }
    pub(crate) fn limit_account_day(&self) -> Limit {
        Limit {
            name: "sms/account/day",
            max: self.cfg.sms_per_account_per_day,
            window_ms: DAY_MS,
            code: "too_many_codes",
        }
    }
    pub(crate) fn limit_global_hour(&self) -> Limit {
        Limit {
            name: "sms/global/hour",
            max: self.cfg.sms_per_hour_global,
            window_ms: HOUR_MS,
            code: "too_many_codes",
        }
    }
    pub(crate) fn limit_verify_ip_hour(&self) -> Limit {
        Limit {
            name: "verify/ip/hour",
            max: self.cfg.verify_per_ip_per_hour,
            window_ms: HOUR_MS,
            code: "too_many_attempts",
        }
    }
}

fn throttled(limit: Limit, oldest_ms: i64, now_ms: i64) -> AppError {
    let wait_ms = (oldest_ms + limit.window_ms - now_ms).max(1_000);
    AppError::Throttled {
        code: limit.code,
        retry_after_secs: u64::try_from(wait_ms).unwrap_or(1_000).div_ceil(1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::ip_key;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_mapped_addresses_count_per_ipv4_address_and_ipv6_per_64() {
        let mapped = |a: [u8; 4]| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped());
        assert_ne!(
            ip_key(mapped([203, 0, 113, 7])),
            ip_key(mapped([198, 51, 100, 9]))
        );
        assert_eq!(
            ip_key(mapped([203, 0, 113, 7])),
            ip_key(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)))
        );
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        assert_eq!(ip_key(v6(1)), ip_key(v6(2)));
        assert_ne!(
            ip_key(v6(1)),
            ip_key(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1)))
        );
    }
}
