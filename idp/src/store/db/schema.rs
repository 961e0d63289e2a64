//! Diesel's view of the schema; one file for both backends (the migrations keep them equal).

diesel::table! {
    agencies (code) {
        code -> Text,
        name -> Text,
        parent_code -> Nullable<Text>,
        oid -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    people (id) {
        id -> Text,
        national_id_index -> Text,
        national_id_sealed -> Text,
        name -> Text,
        agency_code -> Text,
        unit -> Text,
        person_category -> Text,
        concurrent_duty -> Text,
        status -> Text,
        email -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        person_id -> Text,
        account_name -> Nullable<Text>,
        account_name_key -> Nullable<Text>,
        email -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        state -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        email_verified_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    email_verifications (token_hash) {
        token_hash -> Text,
        account_id -> Text,
        email -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    one_time_passwords (account_id) {
        account_id -> Text,
        password_hash -> Text,
        issued_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        kind -> Text,
        redirect_uris -> Text,
        post_logout_redirect_uris -> Text,
        id_token_alg -> Text,
        created_at -> BigInt,
        token_endpoint_auth_method -> Text,
        grant_types -> Text,
        scope -> Text,
        subject_type -> Text,
        consent -> Text,
        min_acr -> Nullable<Text>,
        jwks -> Nullable<Text>,
        jwks_uri -> Nullable<Text>,
        backchannel_logout_uri -> Nullable<Text>,
        registration_token_hash -> Nullable<Text>,
        updated_at -> BigInt,
        audience -> Text,
        portal_category -> Nullable<Text>,
        portal_description -> Nullable<Text>,
        portal_url -> Nullable<Text>,
        disabled_at -> Nullable<BigInt>,
        client_credentials_allowed -> Bool,
        resource_server -> Bool,
        previous_secret_hash -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<BigInt>,
        request_object_signing_alg -> Nullable<Text>,
        require_signed_request_object -> Bool,
        require_pushed_authorization_requests -> Bool,
        dpop_bound_access_tokens -> Bool,
        fapi2 -> Bool,
        resource_uri -> Nullable<Text>,
    }
}

diesel::table! {
    account_roles (account_id, role) {
        account_id -> Text,
        role -> Text,
        granted_by -> Text,
        granted_at -> BigInt,
    }
}

diesel::table! {
    announcements (id) {
        id -> Text,
        title -> Text,
        body -> Text,
        published_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        created_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    consents (account_id, client_id) {
        account_id -> Text,
        client_id -> Text,
        scope -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        family_id -> Text,
        account_id -> Text,
        client_id -> Text,
        scope -> Text,
        sid -> Text,
        auth_time -> BigInt,
        acr -> Text,
        amr -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        dpop_jkt -> Nullable<Text>,
        resource -> Nullable<Text>,
    }
}

diesel::table! {
    session_clients (sid, client_id) {
        sid -> Text,
        client_id -> Text,
        account_id -> Text,
        created_at -> BigInt,
        ended_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    logout_outbox (sid, client_id) {
        sid -> Text,
        client_id -> Text,
        account_id -> Text,
        created_at -> BigInt,
        next_attempt_at -> BigInt,
        attempts -> Integer,
        done_at -> Nullable<BigInt>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    registration_tokens (id) {
        id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        sid -> Text,
        account_id -> Text,
        auth_time -> BigInt,
        acr -> Text,
        amr -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        acting_agency -> Nullable<Text>,
    }
}

diesel::table! {
    card_bindings (id) {
        id -> Text,
        account_id -> Text,
        kind -> Text,
        issuer -> Text,
        serial -> Text,
        spki_sha256 -> Text,
        subject -> Text,
        agency_code -> Nullable<Text>,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_sealed -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
        activates_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> BigInt,
        event -> Text,
        outcome -> Text,
        actor -> Nullable<Text>,
        account_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        address -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::joinable!(people -> agencies (agency_code));
diesel::joinable!(accounts -> people (person_id));
diesel::allow_tables_to_appear_in_same_query!(
    agencies,
    people,
    accounts,
    one_time_passwords,
    email_verifications,
    clients,
    sessions,
    signing_keys,
    audit_events
);
