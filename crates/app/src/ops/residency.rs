//! Residency (P20): every sink personal data reaches declares its region — the database,
//! the key vault, object storage, the SMS and push providers in `[residency]` of
//! `custos.toml`, partners in the declaration. Startup refuses, naming the sink, a
//! configuration that puts personal data outside the declared region without a declared
//! cross-border transfer (`[[transfers]]`: purposes, recipient, security measures, risks
//! and a separate-consent purpose); at runtime a transfer to such a sink needs that
//! separate consent ([`PolicyOps::check_transfer`]).

use custos_core::{Denial, GateContext, SubjectId};
use custos_policy::{Policy, SINKS};
use serde::{Deserialize, Serialize};

use super::revisions::PolicyOps;
use crate::{AppError, AppResult};

/// `[residency]` in `custos.toml`: the ISO 3166-1 alpha-2 region of each sink. A sink not
/// listed is taken to be in the declaration's region (the embedded default keeps
/// everything in the data directory).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidencyConfig {
    pub database: Option<String>,
    pub vault: Option<String>,
    pub object_storage: Option<String>,
    pub sms: Option<String>,
    pub push: Option<String>,
}

impl ResidencyConfig {
    fn get(&self, sink: &str) -> Option<&str> {
        match sink {
            "database" => self.database.as_deref(),
            "vault" => self.vault.as_deref(),
            "object_storage" => self.object_storage.as_deref(),
            "sms" => self.sms.as_deref(),
            "push" => self.push.as_deref(),
            _ => None,
        }
    }
}

/// One sink and where it keeps data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkRegion {
    /// `database`, `vault`, `object_storage`, `sms`, `push`, or `partner:ID`.
    pub sink: String,
    pub region: String,
    /// Outside the declared region, under a declared transfer (or cross-border partner).
    pub cross_border: bool,
    /// The separate-consent purpose a transfer there needs, when cross-border.
    pub consent_purpose: Option<String>,
}

/// Every sink's region, checked against the declaration.
#[derive(Debug, Clone, Serialize)]
pub struct Residency {
    /// The declared region.
    pub region: String,
    pub sinks: Vec<SinkRegion>,
}

fn is_region(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

impl Residency {
    /// Checks the configuration against the declaration: every sink outside the declared
    /// region needs a `[[transfers]]` entry for that sink and region. The error names the
    /// sink and says what to declare.
    pub fn check(
        cfg: &ResidencyConfig,
        policy: &Policy,
        database_url: &str,
        vault_url: &str,
    ) -> anyhow::Result<Residency> {
        let d = policy.declaration();
        let mut sinks = Vec::new();
        for sink in SINKS {
            let region = cfg.get(sink).unwrap_or(&d.region).trim();
            if !is_region(region) {
                anyhow::bail!(
                    "residency: the {sink} sink's region `{region}` is not an ISO 3166-1 alpha-2 \
                     code (two uppercase letters, e.g. \"CN\"); set [residency] {sink} in custos.toml"
                );
            }
            let mut row = SinkRegion {
                sink: (*sink).to_owned(),
                region: region.to_owned(),
                cross_border: region != d.region,
                consent_purpose: None,
            };
            if row.cross_border {
                let Some(t) = d
                    .transfers
                    .iter()
                    .find(|t| t.sink == *sink && t.region == region)
                else {
                    let shared = match *sink {
                        "database" if vault_url == database_url => {
                            " (the vault shares this database)"
                        }
                        _ => "",
                    };
                    anyhow::bail!(
                        "residency: the {sink} sink{shared} keeps personal data in {region}, outside \
                         the declared region {home}, and the declaration has no cross-border \
                         transfer for it. Keep the sink in {home}, or declare [[transfers]] with \
                         sink = \"{sink}\", region = \"{region}\", the purposes whose data goes there, \
                         recipient, security_measures, risks and a separate-consent \
                         consent_purpose, then publish it (P20, PIPL 38-39)",
                        home = d.region
                    );
                };
                row.consent_purpose = Some(t.consent_purpose.clone());
            }
            sinks.push(row);
        }
        for p in &d.partners {
            // Validation already requires cross_border, risks and separate consent here.
            sinks.push(SinkRegion {
                sink: format!("partner:{}", p.id),
                region: p.region.clone(),
                cross_border: p.region != d.region,
                consent_purpose: None,
            });
        }
        Ok(Residency {
            region: d.region.clone(),
            sinks,
        })
    }

    pub fn sink(&self, sink: &str) -> Option<&SinkRegion> {
        self.sinks.iter().find(|s| s.sink == sink)
    }
}

impl PolicyOps {
    /// Whether `subject`'s data for `purpose` may go to `sink` now. A sink in the declared
    /// region always may; one abroad only for purposes its declared transfer covers, and
    /// only once the subject gave the transfer's separate consent (P20, L1). Call before
    /// every write to or delivery through the sink.
    pub fn check_transfer(
        &self,
        subject: SubjectId,
        sink: &str,
        purpose: &str,
        ctx: &GateContext<'_>,
    ) -> AppResult<()> {
        let Some(s) = self.residency.sink(sink) else {
            return Err(AppError::bad(
                "unknown_sink",
                format!("`{sink}` is not a configured sink"),
            ));
        };
        if !s.cross_border {
            return Ok(());
        }
        let regime = self.kernel.gate.regime();
        let covered = regime.current().declaration().transfers.iter().find(|t| {
            t.sink == sink && t.region == s.region && t.purposes.iter().any(|p| p == purpose)
        });
        let Some(t) = covered else {
            return Err(AppError::Denied(Denial::RegionNotAllowed(s.region.clone())));
        };
        self.kernel.permit(subject, &t.consent_purpose, &[], ctx)?;
        Ok(())
    }
}
