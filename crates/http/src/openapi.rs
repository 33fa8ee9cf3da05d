//! The OpenAPI 3.1 document. `docs/openapi.json` is a committed copy; a test fails when
//! they differ (regenerate with `custos openapi > docs/openapi.json`).

use utoipa::OpenApi;

use crate::error::ErrorBody;
use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Custos API", description = "Privacy kernel: policy, consent ledger, receipts."),
    paths(healthz, readyz, receipt_keys, get_policy, get_policy_page, get_records, list_purposes,
          record_consents, list_consents, withdraw, get_receipt),
    components(schemas(ErrorBody, PolicyDocument, VersionSummary, PurposeView, DecisionItem,
                       DecisionRequest, ReceiptView, ConsentView)),
    tags((name = "policy", description = "The declaration, rendered and machine-readable"),
         (name = "consent", description = "Decisions, receipts, withdrawal"),
         (name = "operations", description = "Health and readiness"))
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::identity::IdentityApi::openapi());
    doc.merge(crate::catalog::CatalogApi::openapi());
    doc.merge(crate::signals::SignalsApi::openapi());
    doc.merge(crate::device::DeviceApi::openapi());
    doc.merge(crate::ads::AdsApi::openapi());
    doc.merge(crate::push::PushApi::openapi());
    doc.merge(crate::feed::FeedApi::openapi());
    doc.merge(crate::rights::RightsApi::openapi());
    doc.merge(crate::ops::OpsApi::openapi());
    doc.merge(crate::ops_policy::OpsPolicyApi::openapi());
    doc.merge(crate::incidents::IncidentsApi::openapi());
    doc.merge(crate::partners::PartnersApi::openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut s = doc
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}
