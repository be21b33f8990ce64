//! How long it takes to turn a credential into a principal: JWT access
//! tokens (signature + claims) and `hdy_` API tokens (hash + index lookup
//! + record checks), the work every authenticated request does first.

use std::net::IpAddr;

use control::settings::Settings;
use control::state::AppState;
use control::store::Store;
use control::tokens::model::{ApiToken, API_TOKENS, API_TOKENS_BY_HASH};
use control::users::model::{User, USERS};
use criterion::{criterion_group, criterion_main, Criterion};

fn user() -> User {
    User {
        id: "65f0000000000000000000aa".into(),
        email: "bench@example.test".into(),
        username: None,
        alias: None,
        password_hash: String::new(),
        email_verified: true,
        is_admin: false,
        is_banned: false,
        session_generation: 0,
        metadata: Default::default(),
        onboarding: Default::default(),
        region: None,
        signup_method: None,
        invite_code_hash: None,
        public_key: None,
        avatar_url: None,
        free_tier_unlocked: false,
        free_tier_unlocked_at: None,
        free_tier_unlock_source: None,
        free_tier_server_id: None,
        default_project_id: None,
        recent_login_ips: Vec::new(),
        created_at: control::wire::now(),
        updated_at: control::wire::now(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = rt.enter();
    let dir = std::env::temp_dir().join(format!("hoody-bench-auth-{}", std::process::id()));
    let state = AppState::with_store(
        Settings::for_data_dir(&dir),
        Store::temporary().expect("store"),
    )
    .expect("state");
    let user = user();
    let (raw, hash, prefix) = control::tokens::secret::generate();
    let token = ApiToken {
        id: "65f0000000000000000000bb".into(),
        user_id: user.id.clone(),
        alias: "bench".into(),
        prefix,
        token_hash: hash.clone(),
        public_key: None,
        public_storage: None,
        ip_whitelist: vec!["127.0.0.0/8".into()],
        realm_ids: Vec::new(),
        allow_no_realm: true,
        permissions: serde_json::json!({"resources": {"read_account": true}}),
        expires_at: None,
        is_enabled: true,
        vault_access: false,
        event_access: true,
        deny_reauthorization: false,
        created_by_token_id: None,
        delegation_depth: 0,
        last_used_at: None,
        last_used_ip: None,
        created_at: control::wire::now(),
        updated_at: control::wire::now(),
    };
    state
        .store
        .tx(|tx| {
            tx.put(&USERS, &user.id, &user)?;
            tx.put(&API_TOKENS, &token.id, &token)?;
            tx.set_unique(&API_TOKENS_BY_HASH, &hash, &token.id)
        })
        .expect("seed");
    let ip: IpAddr = "127.0.0.1".parse().expect("ip");
    // Warm the last-used bookkeeping so the loop measures the read path.
    let _ = control::tokens::service::authenticate(&state, &raw, ip, None);
    c.bench_function("api_token_authenticate", |b| {
        b.iter(|| control::tokens::service::authenticate(&state, &raw, ip, None).expect("valid"))
    });

    let jwt = control::auth::jwt::issue(
        &state.keys.jwt_secret,
        &user.id,
        0,
        "fam",
        control::wire::unix_now(),
    )
    .expect("jwt");
    c.bench_function("jwt_verify_signature_and_claims", |b| {
        b.iter(|| control::auth::jwt::verify(&state.keys.jwt_secret, &jwt).expect("valid"))
    });
    let pair = control::auth::session::start(&state, &user).expect("session");
    c.bench_function("jwt_session_authenticate", |b| {
        b.iter(|| control::auth::session::authenticate(&state, &pair.token).expect("valid"))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
