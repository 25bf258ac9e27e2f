//! The Microsoft identity platform stand-in: `POST /{tenant}/oauth2/v2.0/token` with the client
//! credentials grant (client secret or certificate client assertion), AADSTS-shaped errors,
//! and which tenant a bearer token was issued for.
//!
//! Exists so the product's authentication (and its error handling and redaction) is tested
//! against the answers Entra ID gives, per tenant: a token is issued for the tenant in the
//! path, and only that tenant's data is ever served with it.

use std::collections::HashMap;

use hyper::Method;
use serde_json::json;

use super::assertion::check_assertion;
use super::call::Call;
use super::respond::{Resp, aadsts, json_response, raw_response};
use super::state::{IssuedToken, State};
use crate::util::{parse_pairs, random_hex};

fn missing(name: &str) -> Resp {
    aadsts(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(super) fn token(call: &mut Call<'_>, tenant_id: &str) -> Resp {
    let mut st = call.shared.lock();
    let Some(index) = st.tenant_index(tenant_id) else {
        return aadsts(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    };
    call.tenant = Some(index);
    if let Some((status, body)) = st.tenants[index].take_token_fault() {
        return raw_response(status, body, "application/json; charset=utf-8");
    }
    if call.method != Method::POST {
        return aadsts(
            400,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests. Received a GET request.",
        );
    }
    let form: HashMap<String, String> = parse_pairs(&String::from_utf8_lossy(&call.body))
        .into_iter()
        .collect();
    let scope = match check_form(&st, index, &form) {
        Ok(scope) => scope,
        Err(resp) => return *resp,
    };
    let tenant = &st.tenants[index];
    let client_id = tenant.client_id.as_str();
    if form.contains_key("client_assertion") || form.contains_key("client_assertion_type") {
        let audience = format!("{}/{tenant_id}/oauth2/v2.0/token", call.shared.url);
        if let Err(resp) = check_assertion(&tenant.app_certs, &form, &audience, client_id) {
            return *resp;
        }
        return issue_token(&mut st, index, scope);
    }
    let Some(secret) = form.get("client_secret") else {
        return aadsts(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if *secret != tenant.client_secret {
        return aadsts(
            401,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    issue_token(&mut st, index, scope)
}

/// Checks the grant type, the client id (registered in this tenant) and the scope; returns
/// the scope.
fn check_form(
    st: &State,
    tenant: usize,
    form: &HashMap<String, String>,
) -> Result<String, Box<Resp>> {
    let Some(grant_type) = form.get("grant_type") else {
        return Err(Box::new(missing("grant_type")));
    };
    if grant_type != "client_credentials" {
        return Err(Box::new(aadsts(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        )));
    }
    let Some(client_id) = form.get("client_id") else {
        return Err(Box::new(missing("client_id")));
    };
    let tenant = &st.tenants[tenant];
    if *client_id != tenant.client_id {
        return Err(Box::new(aadsts(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                tenant.tenant_id
            ),
        )));
    }
    let Some(scope) = form.get("scope") else {
        return Err(Box::new(aadsts(
            400,
            "invalid_scope",
            70011,
            "The provided request must include a 'scope' input parameter.",
        )));
    };
    if scope.split(' ').filter(|s| !s.is_empty()).count() != 1 || !scope.ends_with("/.default") {
        return Err(Box::new(aadsts(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )));
    }
    Ok(scope.clone())
}

fn issue_token(st: &mut State, tenant: usize, scope: String) -> Resp {
    let access_token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.{}.{}",
        random_hex(24),
        random_hex(16)
    );
    st.tokens
        .insert(access_token.clone(), IssuedToken { tenant, scope });
    st.issued_log.push((tenant, access_token.clone()));
    json_response(
        200,
        &json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access_token,
        }),
    )
}

/// Why a bearer token was not accepted.
pub(super) enum BearerError {
    /// No `Authorization: Bearer …` header, or an empty token.
    Missing,
    /// A token this server did not issue, or one that was revoked.
    Unknown,
}

/// The tenant (index) and scope the request's bearer token was issued for; sets
/// `call.tenant`.
pub(super) fn bearer_tenant(call: &mut Call<'_>) -> Result<(usize, String), BearerError> {
    let token = call.bearer().ok_or(BearerError::Missing)?;
    let st = call.shared.lock();
    let issued = st.tokens.get(token).ok_or(BearerError::Unknown)?;
    let found = (issued.tenant, issued.scope.clone());
    drop(st);
    call.tenant = Some(found.0);
    Ok(found)
}
