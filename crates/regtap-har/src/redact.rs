//! Redaction by class: the one place that decides what is a credential in
//! anything regtap writes for others to read (HAR export, `inspect --json`).
//!
//! Classes, each with a test below:
//! - credential headers (`Authorization`, `Proxy-Authorization`, cookies,
//!   `X-Registry-Auth`, `*-Token`, `*-Api-Key`, `X-JFrog-Art-Api`, …);
//! - URL userinfo (`https://user:pass@…`);
//! - query, form and JSON keys matched by pattern (token, secret, password,
//!   auth, key, signature, credential, session, …) at any depth, whatever the
//!   value's type (numbers too; booleans and `null` carry no secret);
//! - pre-signed storage URLs (`X-Amz-Signature`, `X-Amz-Credential`,
//!   `X-Amz-Security-Token`, `X-Goog-*`, Azure `sig`, CloudFront `Signature`,
//!   `Policy`, `Key-Pair-Id`, CDN `verify`), keeping the non-secret expiry;
//! - credentials inside free text (URLs, JWTs, `Basic …`/`Bearer …`), as
//!   registry error messages and decoder summaries may quote them;
//! - the decoder's own fingerprints of tokens, replaced by this export's.
//!
//! A credential becomes `<redacted hmac:…>`: 12 hex digits of HMAC-SHA256
//! keyed with a random salt per export, so equal secrets correlate within
//! one file (the token a token endpoint issued and the `Bearer` that later
//! carries it) and nowhere else.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Every replacement starts with this; a value that does is not redacted again.
pub const REDACTED_PREFIX: &str = "<redacted";

/// Characters left as they are when a fingerprint goes into a URL.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Key words that make a key (normalized: lowercase, letters and digits only)
/// a credential wherever they appear in it.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "signature",
    "apikey",
    "accesskey",
    "privatekey",
    "sessionid",
    "sessionkey",
    "cookie",
    "artapi",
];

/// Keys that are credentials only when they are the whole key: as parts of
/// longer words they are too common (`authors`, `keyword`, `design`).
const SECRET_KEYS: &[&str] = &[
    "auth",
    "key",
    "sig",
    "pwd",
    "pass",
    "pin",
    "otp",
    "session",
    "verify",
    "policy",
    "keypairid",
    "sas",
];

/// Endings that make a key describe a credential rather than hold it
/// (`token_type`, `expires_in`, the decoder's `signature_bytes`, `auth_url`).
const DESCRIPTIVE_ENDINGS: &[&str] = &[
    "type",
    "bytes",
    "len",
    "length",
    "count",
    "size",
    "status",
    "expires",
    "expiresin",
    "expiresat",
    "expiry",
    "issuedat",
    "ttl",
    "url",
    "uri",
    "endpoint",
    "scheme",
];

/// A key with letters and digits only, lowercased: `X-Amz-Signature` and
/// `x_amz_signature` are the same key.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether a query, form or JSON key (or a header name) holds a credential.
pub fn is_secret_key(key: &str) -> bool {
    let key = normalize(key);
    if key.is_empty() || DESCRIPTIVE_ENDINGS.iter().any(|e| key.ends_with(e)) {
        return false;
    }
    SECRET_WORDS.iter().any(|w| key.contains(w))
        || SECRET_KEYS.contains(&key.as_str())
        || key.ends_with("auth")
        || (key.ends_with("key") && !key.ends_with("publickey"))
}

/// How many keys a [`Redactor`] remembers the class of: the decoder's output
/// uses a few dozen; a body with more distinct keys is classified afresh.
const REMEMBERED_KEYS: usize = 4096;

/// How many secrets a [`Redactor`] remembers the fingerprint of: a batch
/// of entries carries a few tokens, each on hundreds of requests.
const REMEMBERED_PRINTS: usize = 1024;

/// Header fields whose whole value is a credential (beyond the `Scheme
/// credentials` ones): `X-Registry-Auth`, `X-Amz-Security-Token`,
/// `X-JFrog-Art-Api`, `Private-Token`, `X-Api-Key`, ….
pub fn is_secret_header(name: &str) -> bool {
    !is_descriptive_header(name) && is_secret_key(name)
}

/// Headers that describe authentication and match the key pattern.
fn is_descriptive_header(name: &str) -> bool {
    [
        "www-authenticate",
        "proxy-authenticate",
        "authentication-info",
    ]
    .iter()
    .any(|descriptive| name.eq_ignore_ascii_case(descriptive))
}

/// Random bytes that key this export's fingerprints.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt([u8; 16]);

impl Salt {
    /// From the operating system's random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            // No OS randomness (never seen on Linux): still unique per export.
            let seed = format!(
                "{:?} {} {:p}",
                std::time::SystemTime::now(),
                std::process::id(),
                &bytes
            );
            bytes.copy_from_slice(&Sha256::digest(seed.as_bytes())[..16]);
        }
        Salt(bytes)
    }

    /// A fixed salt, for reproducible output in tests.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Salt(bytes)
    }

    pub fn hex(&self) -> String {
        hex_lower(&self.0)
    }
}

impl Default for Salt {
    fn default() -> Self {
        Salt::random()
    }
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Salt({})", self.hex())
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The decoder's name for a token (`regtap_decode`'s fingerprint: 12 hex
/// digits of its unsalted SHA-256), so that its annotations can be given this
/// export's salted fingerprint instead.
fn decoder_fingerprint(secret: &str) -> String {
    hex_lower(&Sha256::digest(secret.as_bytes())[..6])
}

/// Replaces credentials by salted fingerprints; remembers what it replaced so
/// the decoder's annotations about the same tokens get the same fingerprints.
/// A clone carries on with what this one has seen so far, on its own.
#[derive(Debug, Clone)]
pub struct Redactor {
    salt: Salt,
    /// Decoder fingerprint → this export's fingerprint, for every secret
    /// seen since the last [`Redactor::freeze`] (and before it: `frozen_names`).
    decoder_names: RefCell<HashMap<String, String>>,
    /// The names known at the last freeze, shared by the copies made since.
    frozen_names: Arc<HashMap<String, String>>,
    /// [`is_secret_key`] of the JSON keys and header names met so far: the
    /// same few come back in every flow of a large capture.
    secret_keys: RefCell<HashMap<String, bool>>,
    /// What this copy consulted and learned, when asked to keep track
    /// ([`Redactor::keep_journal`]).
    journal: RefCell<Option<Journal>>,
    prints: PrintMemo,
}

/// Secret → (decoder name, fingerprint), for the secrets a copy of a
/// [`Redactor`] fingerprinted: an HMAC and a SHA-256 of a 1–2 KB token on
/// every request were a twentieth of a HAR export. A copy starts with
/// none: copies are made per batch, and the memo may hold a thousand
/// tokens.
#[derive(Debug, Default)]
struct PrintMemo(RefCell<HashMap<String, (String, String)>>);

impl Clone for PrintMemo {
    fn clone(&self) -> Self {
        PrintMemo::default()
    }
}

/// What a copy of a [`Redactor`] did with its decoder names since it was
/// asked to keep track: copies that work side by side on parts of one
/// export are put together from it, and a part whose output depended on a
/// name another part learned is told apart.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal {
    /// Every decoder name looked up (found or not) or given a fingerprint.
    pub touched: HashSet<String>,
    /// Decoder name → fingerprint, for the names whose fingerprint changed
    /// (most secrets were known before): the last one given to each.
    pub learned: HashMap<String, String>,
}

impl Redactor {
    pub fn new(salt: Salt) -> Self {
        Redactor {
            salt,
            decoder_names: RefCell::new(HashMap::new()),
            frozen_names: Arc::default(),
            secret_keys: RefCell::new(HashMap::new()),
            journal: RefCell::new(None),
            prints: PrintMemo::default(),
        }
    }

    /// From now on, notes every decoder name consulted and learned.
    pub(crate) fn keep_journal(&self) {
        *self.journal.borrow_mut() = Some(Journal::default());
    }

    /// What was noted since [`Redactor::keep_journal`]; noting stops.
    pub(crate) fn take_journal(&self) -> Journal {
        self.journal.borrow_mut().take().unwrap_or_default()
    }

    /// Makes the names known so far cheap to copy: copies share them.
    pub(crate) fn freeze(&mut self) {
        let names = std::mem::take(self.decoder_names.get_mut());
        Arc::make_mut(&mut self.frozen_names).extend(names);
    }

    /// The fingerprint decoder name `name` stands for, if known.
    fn known_print(&self, name: &str) -> Option<String> {
        self.decoder_names
            .borrow()
            .get(name)
            .or_else(|| self.frozen_names.get(name))
            .cloned()
    }

    /// Takes in names another copy learned, as if it had learned them.
    pub(crate) fn learn(&self, learned: &HashMap<String, String>) {
        for (name, print) in learned {
            self.name(name, print);
        }
    }

    /// Gives decoder name `name` the fingerprint `print`.
    fn name(&self, name: &str, print: &str) {
        let mut names = self.decoder_names.borrow_mut();
        let known = names
            .get(name)
            .or_else(|| self.frozen_names.get(name))
            .is_some_and(|known| known == print);
        if let Some(journal) = self.journal.borrow_mut().as_mut() {
            if !journal.touched.contains(name) {
                journal.touched.insert(name.to_owned());
            }
            if !known {
                journal.learned.insert(name.to_owned(), print.to_owned());
            }
        }
        if !known {
            names.insert(name.to_owned(), print.to_owned());
        }
    }

    fn consulted(&self, name: &str) {
        if let Some(journal) = self.journal.borrow_mut().as_mut()
            && !journal.touched.contains(name)
        {
            journal.touched.insert(name.to_owned());
        }
    }

    /// [`is_secret_key`], remembered.
    fn is_secret_name(&self, key: &str) -> bool {
        if let Some(&secret) = self.secret_keys.borrow().get(key) {
            return secret;
        }
        let secret = is_secret_key(key);
        let mut known = self.secret_keys.borrow_mut();
        if known.len() < REMEMBERED_KEYS {
            known.insert(key.to_owned(), secret);
        }
        secret
    }

    pub fn salt(&self) -> &Salt {
        &self.salt
    }

    /// `<redacted hmac:XXXXXXXXXXXX>`: 12 hex digits of HMAC-SHA256(salt, secret).
    pub fn fingerprint(&self, secret: &str) -> String {
        if let Some((name, print)) = self.prints.0.borrow().get(secret) {
            self.name(name, print);
            return print.clone();
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.salt.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(secret.as_bytes());
        let print = format!(
            "<redacted hmac:{}>",
            hex_lower(&mac.finalize().into_bytes()[..6])
        );
        let name = decoder_fingerprint(secret);
        self.name(&name, &print);
        let mut prints = self.prints.0.borrow_mut();
        if prints.len() < REMEMBERED_PRINTS {
            prints.insert(secret.to_owned(), (name, print.clone()));
        }
        print
    }

    /// The value to write for header `name`.
    pub fn header_value(&self, name: &str, value: &str) -> String {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        if is("authorization") || is("proxy-authorization") {
            match value.trim().split_once(' ') {
                // Keep the scheme: "Bearer" vs "Basic" is what a reader needs.
                Some((scheme, credentials)) => {
                    format!("{scheme} {}", self.fingerprint(credentials.trim()))
                }
                None => self.fingerprint(value.trim()),
            }
        } else if is("cookie") {
            value
                .split(';')
                .map(|pair| self.cookie_pair(pair.trim()))
                .collect::<Vec<_>>()
                .join("; ")
        } else if is("set-cookie") {
            let (first, attributes) = value.split_once(';').unwrap_or((value, ""));
            let redacted = self.cookie_pair(first.trim());
            if attributes.is_empty() {
                redacted
            } else {
                format!("{redacted};{attributes}")
            }
        } else if !is_descriptive_header(name) && self.is_secret_name(name) {
            self.fingerprint(value)
        } else if is("location") || is("content-location") || is("referer") {
            self.url(value)
        } else {
            self.text(value)
        }
    }

    fn cookie_pair(&self, pair: &str) -> String {
        match pair.split_once('=') {
            Some((name, value)) => format!("{name}={}", self.fingerprint(value)),
            None => pair.to_owned(),
        }
    }

    /// A cookie's value.
    pub fn cookie_value(&self, value: &str) -> String {
        self.fingerprint(value)
    }

    /// The value of query or form parameter `name`, decoded.
    pub fn parameter_value(&self, name: &str, value: &str) -> String {
        if is_secret_key(name) && !is_flag(value) {
            self.fingerprint(value)
        } else {
            self.text(value)
        }
    }

    /// `url` with its userinfo password and secret query values replaced by
    /// (percent-encoded) fingerprints. Relative URLs and other text pass.
    pub fn url(&self, url: &str) -> String {
        rewrite_url(url, &|secret| {
            utf8_percent_encode(&self.fingerprint(secret), QUERY_VALUE).to_string()
        })
    }

    /// An `application/x-www-form-urlencoded` string (query or form body)
    /// with secret values replaced. `percent_encode_fingerprints`: write the
    /// fingerprint percent-encoded (for URLs) rather than form-encoded.
    pub fn urlencoded(&self, text: &str, percent_encode_fingerprints: bool) -> String {
        text.split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value))
                    if is_secret_key(&decode_component(name))
                        && !is_flag(&decode_component(value)) =>
                {
                    let print = self.fingerprint(&decode_component(value));
                    let encoded = utf8_percent_encode(&print, QUERY_VALUE).to_string();
                    if percent_encode_fingerprints {
                        format!("{name}={encoded}")
                    } else {
                        format!("{name}={}", encoded.replace("%20", "+"))
                    }
                }
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Free text (a header value, an error message, a decoder summary) with
    /// the credentials it quotes replaced: URLs, JWTs, `Basic`/`Bearer`
    /// credentials.
    pub fn text(&self, text: &str) -> String {
        self.scrubbed(text).into_owned()
    }

    /// [`Redactor::text`], borrowing the text when it quotes no credential.
    fn scrubbed<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !may_quote_credentials(text) {
            return Cow::Borrowed(text);
        }
        let with_urls = self.urls_in(text);
        Cow::Owned(self.tokens_in(&with_urls))
    }

    fn urls_in(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = find_url_start(rest) {
            let (before, from_url) = rest.split_at(at);
            out.push_str(before);
            let end = from_url
                .find(|c: char| {
                    c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`')
                })
                .unwrap_or(from_url.len());
            out.push_str(&self.url(&from_url[..end]));
            rest = &from_url[end..];
        }
        out.push_str(rest);
        out
    }

    /// JWTs anywhere, and the credentials after `Basic ` / `Bearer `.
    fn tokens_in(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut words = text.split_inclusive(|c: char| !is_token_char(c)).peekable();
        let mut after_scheme = false;
        while let Some(piece) = words.next() {
            let word_len = piece
                .char_indices()
                .find(|(_, c)| !is_token_char(*c))
                .map_or(piece.len(), |(i, _)| i);
            let (word, separator) = piece.split_at(word_len);
            // `realm=…` after `Bearer ` is a challenge, not a credential.
            let credential = (after_scheme
                && word.len() >= 8
                && !word.trim_end_matches('=').contains('=')
                && looks_random(word))
                || looks_like_jwt(word);
            if credential && !word.is_empty() {
                out.push_str(&self.fingerprint(word));
            } else {
                out.push_str(word);
            }
            out.push_str(separator);
            after_scheme = separator == " "
                && (word.eq_ignore_ascii_case("basic") || word.eq_ignore_ascii_case("bearer"));
            if words.peek().is_none() {
                break;
            }
        }
        out
    }

    /// A body's text as it goes into a HAR: form and JSON bodies redacted by
    /// key, other text scrubbed; `None` when it names a credential field yet
    /// cannot be parsed to redact it.
    pub fn body_text(&self, text: &str, is_form: bool) -> Option<String> {
        if is_form {
            return Some(self.urlencoded(text, false));
        }
        if let Some(redacted) = self.json_text(text) {
            return Some(redacted);
        }
        let lower = normalize(text);
        if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            return None;
        }
        Some(self.text(text))
    }

    /// A JSON text with credentials replaced (see [`Redactor::json_body`]).
    /// The text keeps its formatting and key order when the changed values
    /// are spelled plainly in it; otherwise it is re-serialized. `None` when
    /// the text is not JSON.
    pub fn json_text(&self, text: &str) -> Option<String> {
        let mut redacted: Value = serde_json::from_str(text).ok()?;
        if !self.json_body(&mut redacted) {
            return Some(text.to_owned());
        }
        // Most bodies name no credential: read again only for those that do.
        let original: Value = serde_json::from_str(text).ok()?;
        let mut changes = Vec::new();
        changed_leaves(&original, &redacted, &mut changes);
        let mut out = text.to_owned();
        for (old, new) in changes {
            if let (Ok(spelled), Ok(replacement)) =
                (serde_json::to_string(old), serde_json::to_string(new))
            {
                out = replace_values(&out, &spelled, &replacement);
            }
        }
        if serde_json::from_str::<Value>(&out).is_ok_and(|v| v == redacted) {
            Some(out)
        } else {
            // Escaped or unusual spellings: write the redacted value itself.
            serde_json::to_string(&redacted).ok()
        }
    }

    /// A request or response body: every scalar under a secret key, and
    /// everything inside an object or array under one, becomes a fingerprint;
    /// other strings are scrubbed as text. Whether anything changed.
    pub fn json_body(&self, value: &mut Value) -> bool {
        self.walk(value, Walk::Body, false)
    }

    /// The decoder's output as a HAR's `_regtap`: the decoder's token
    /// fingerprints become this export's, strings under secret keys become
    /// fingerprints, strings are scrubbed as text. Objects under secret keys
    /// (the decoder's `token` description) are walked, not blanked.
    pub fn annotations(&self, value: &mut Value) {
        self.walk(value, Walk::Annotations, false);
    }

    /// The decoder's output as `inspect --json` prints it: as
    /// [`Redactor::annotations`], but the decoder's own token fingerprints
    /// are kept, since `inspect` names tokens by them.
    pub fn analysis(&self, value: &mut Value) {
        self.walk(value, Walk::Analysis, false);
    }

    /// Redacts `value` in place; whether anything changed.
    fn walk(&self, value: &mut Value, how: Walk, under_secret: bool) -> bool {
        match value {
            Value::Object(map) => {
                let mut changed = false;
                for (key, item) in map.iter_mut() {
                    let secret = (under_secret && how == Walk::Body) || self.is_secret_name(key);
                    changed |= match how {
                        Walk::Annotations if key == "fingerprint" => {
                            self.rename_decoder_fingerprint(item)
                        }
                        Walk::Analysis if key == "fingerprint" => false,
                        _ => self.walk(item, how, secret),
                    };
                }
                changed
            }
            Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
                self.walk(item, how, under_secret) | changed
            }),
            Value::String(text) if text.starts_with(REDACTED_PREFIX) => false,
            Value::String(text) if under_secret && !text.is_empty() && !is_flag(text) => {
                match (how, self.decoder_name(text)) {
                    (Walk::Annotations, Some(print)) => *text = print,
                    (Walk::Analysis, _) if is_decoder_fingerprint(text) => return false,
                    _ => *text = self.fingerprint(text),
                }
                true
            }
            // `inspect` keeps the decoder's token names, in prose as in
            // `fingerprint` fields: what the walk met before does not matter.
            Value::String(text) => {
                let redacted = match how {
                    Walk::Analysis => self.scrubbed(text),
                    Walk::Annotations | Walk::Body => self.scrubbed_annotation(text),
                };
                match redacted {
                    Cow::Owned(redacted) if redacted != *text => {
                        *text = redacted;
                        true
                    }
                    _ => false,
                }
            }
            // The decoder's numbers are counts, sizes, indices and times.
            Value::Number(number) if under_secret && how == Walk::Body => {
                *value = Value::String(self.fingerprint(&number.to_string()));
                true
            }
            Value::Number(_) | Value::Bool(_) | Value::Null => false,
        }
    }

    /// Decoder prose (a step explanation, a page title): credentials quoted
    /// in it redacted, and tokens named by this export's fingerprints.
    pub fn annotations_text(&self, text: &str) -> String {
        self.scrubbed_annotation(text).into_owned()
    }

    /// [`Redactor::annotations_text`], borrowing the text when it has
    /// nothing to replace.
    fn scrubbed_annotation<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.scrubbed(text) {
            Cow::Borrowed(text) => self.rename_decoder_fingerprints_in(text),
            Cow::Owned(text) => Cow::Owned(self.rename_decoder_fingerprints_in(&text).into_owned()),
        }
    }

    /// The export's fingerprint of a token the decoder named by `name`, when
    /// this redactor has seen that token.
    fn decoder_name(&self, name: &str) -> Option<String> {
        self.consulted(name);
        self.known_print(name)
    }

    /// Whether it changed `value`.
    fn rename_decoder_fingerprint(&self, value: &mut Value) -> bool {
        if let Value::String(name) = value
            && !name.starts_with(REDACTED_PREFIX)
        {
            // A token this export never saw: no correlation, but no hash of it either.
            *name = self
                .decoder_name(name)
                .unwrap_or_else(|| "<redacted>".to_owned());
            return true;
        }
        false
    }

    /// Decoder prose ("token 5f1c9a0b1c2d was issued by flow #3") names
    /// tokens by the decoder's fingerprint.
    fn rename_decoder_fingerprints_in<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let names = self.decoder_names.borrow();
        // A copy keeping a journal notes the words it would look up even
        // when it knows no name yet: another copy may know them.
        let journaling = self.journal.borrow().is_some();
        let knows_none = names.is_empty() && self.frozen_names.is_empty();
        if (knows_none && !journaling) || !has_word_of_fingerprint_length(text) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        for piece in text.split_inclusive(|c: char| !c.is_ascii_alphanumeric()) {
            let word_len = piece
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(piece.len());
            let (word, separator) = piece.split_at(word_len);
            let print = (word.len() == 12)
                .then(|| names.get(word).or_else(|| self.frozen_names.get(word)))
                .flatten();
            if word.len() == 12 && journaling {
                self.consulted(word);
            }
            out.push_str(print.map_or(word, String::as_str));
            out.push_str(separator);
        }
        Cow::Owned(out)
    }
}

/// Whether `text` has what [`Redactor::text`] looks for: a URL, something
/// that may be a JWT, or a `Basic `/`Bearer ` credential. Most of the
/// decoder's prose has none, and is then left as it is without a scan word
/// by word.
fn may_quote_credentials(text: &str) -> bool {
    text.contains("://") || text.contains("eyJ") || has_scheme_before_space(text)
}

/// Whether `Basic ` or `Bearer ` (in any case) is somewhere in `text`.
fn has_scheme_before_space(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(' ').any(|(space, _)| {
        [&b"basic"[..], b"bearer"].iter().any(|scheme| {
            space >= scheme.len() && bytes[space - scheme.len()..space].eq_ignore_ascii_case(scheme)
        })
    })
}

/// Whether `text` has a run of exactly 12 ASCII letters and digits: the
/// length of the decoder's token fingerprints.
fn has_word_of_fingerprint_length(text: &str) -> bool {
    text.as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .any(|word| word.len() == 12)
}

/// What a JSON walk redacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// A body: everything under a secret key, numbers too.
    Body,
    /// `_regtap`: the decoder's fingerprints become the export's.
    Annotations,
    /// `inspect --json`: the decoder's fingerprints stay.
    Analysis,
}

/// 12 lowercase hex digits: how the decoder names a token.
fn is_decoder_fingerprint(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `true`/`false`: a query flag like Docker's `offline_token=true` carries no secret.
fn is_flag(value: &str) -> bool {
    value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
}

/// Where the first `http://` or `https://` (in any case) starts. Found from
/// each `://`, without a lowercase copy of the text: the copy made of all
/// that is left at every URL made a long text quadratic.
fn find_url_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    text.match_indices("://").find_map(|(colon, _)| {
        [&b"https"[..], b"http"].iter().find_map(|scheme| {
            let start = colon.checked_sub(scheme.len())?;
            bytes[start..colon]
                .eq_ignore_ascii_case(scheme)
                .then_some(start)
        })
    })
}

/// Characters of base64, base64url, hex and JWTs.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '=' | '~')
}

/// Not an English word: a digit or symbol, or a capital after the first letter
/// (`dXNlcjpwYXNz`, but not `challenge` or `Credentials`).
fn looks_random(word: &str) -> bool {
    word.chars().any(|c| !c.is_ascii_alphabetic())
        || (word.chars().skip(1).any(|c| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_lowercase()))
}

/// `eyJ…` header, `.`, payload, `.`, signature: a JWT (or a JWS) in text.
fn looks_like_jwt(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3 && parts[0].starts_with("eyJ") && parts[0].len() >= 10 && parts[1].len() >= 4
}

/// Pairs (original, redacted) of every scalar that changed.
fn changed_leaves<'a>(
    original: &'a Value,
    redacted: &'a Value,
    out: &mut Vec<(&'a Value, &'a Value)>,
) {
    match (original, redacted) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, item) in a {
                if let Some(other) = b.get(key) {
                    changed_leaves(item, other, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (item, other) in a.iter().zip(b) {
                changed_leaves(item, other, out);
            }
        }
        (a, b) if a != b => out.push((a, b)),
        _ => {}
    }
}

/// Replaces `spelled` where it stands as a value (after `:`, `[` or `,`, and
/// followed by a delimiter), so keys and parts of other values are left alone.
fn replace_values(text: &str, spelled: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    // One searcher for the whole text: building one costs a pass over
    // `spelled`, often a 1–2 KB token.
    for (at, _) in text.match_indices(spelled) {
        out.push_str(&text[copied..at]);
        copied = at + spelled.len();
        let starts_value = out.trim_end().ends_with([':', '[', ',']);
        let ends_value = text[copied..]
            .trim_start()
            .chars()
            .next()
            .is_none_or(|c| matches!(c, ',' | '}' | ']'));
        out.push_str(if starts_value && ends_value {
            replacement
        } else {
            spelled
        });
    }
    out.push_str(&text[copied..]);
    out
}

/// `url` for a one-line display (the proxy's line per exchange): the values
/// [`Redactor::url`] would fingerprint are shown as `***`.
pub fn url_masked(url: &str) -> String {
    rewrite_url(url, &|_| "***".to_owned())
}

/// A header value for a screen (the TUI before `s` reveals secrets): the
/// credentials [`Redactor::header_value`] would fingerprint are `***`,
/// keeping the scheme of `Authorization` and the names of cookies.
pub fn header_masked(name: &str, value: &str) -> String {
    let mask_pair = |pair: &str| match pair.split_once('=') {
        Some((name, _)) => format!("{name}=***"),
        None => pair.to_owned(),
    };
    match name.to_ascii_lowercase().as_str() {
        "authorization" | "proxy-authorization" => match value.trim().split_once(' ') {
            Some((scheme, _)) => format!("{scheme} ***"),
            None => "***".to_owned(),
        },
        "cookie" => value
            .split(';')
            .map(|pair| mask_pair(pair.trim()))
            .collect::<Vec<_>>()
            .join("; "),
        "set-cookie" => match value.split_once(';') {
            Some((first, attributes)) => format!("{};{attributes}", mask_pair(first.trim())),
            None => mask_pair(value.trim()),
        },
        _ if is_secret_header(name) => "***".to_owned(),
        "location" | "content-location" | "referer" => url_masked(value),
        _ => value.to_owned(),
    }
}

/// `url` with its userinfo password (or a lone user name, which is how
/// tokens travel there) and secret query values replaced by `replace` of
/// their decoded values (already fit for a URL).
fn rewrite_url(url: &str, replace: &dyn Fn(&str) -> String) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (before_fragment, None),
    };
    let mut out = rewrite_userinfo(base, replace);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value))
                    if is_secret_key(&decode_component(name))
                        && !is_flag(&decode_component(value)) =>
                {
                    format!("{name}={}", replace(&decode_component(value)))
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn rewrite_userinfo(base: &str, replace: &dyn Fn(&str) -> String) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return base.to_owned();
    };
    let userinfo = match userinfo.split_once(':') {
        Some((user, password)) => format!("{user}:{}", replace(&decode_component(password))),
        None => replace(&decode_component(userinfo)),
    };
    format!("{scheme}://{userinfo}@{host}{path}")
}

/// A form-encoded component decoded: `+` is a space, then percent-decoding.
pub fn decode_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcuts (text without a URL, JWT or scheme left as it is; the
    /// renaming of fingerprints only where a 12-character word is) change
    /// nothing the full scan would change: checked on every string of
    /// every sample capture, tokens, URLs and error messages included.
    #[test]
    fn shortcuts_agree_with_the_full_scan_on_real_traffic() {
        let redactor = redactor();
        // Names to rename, as after a token was redacted.
        redactor.fingerprint("a token the decoder fingerprinted");
        let mut strings = strings_of_the_sample_captures();
        strings.push(format!(
            "issued {} for basic Basic dXNlcjpwYXNz",
            decoder_fingerprint("a token the decoder fingerprinted")
        ));
        let mut changed = 0;
        for text in &strings {
            let full = redactor.tokens_in(&redactor.urls_in(text));
            assert_eq!(redactor.scrubbed(text), full, "{text}");
            let renamed: String = text
                .split_inclusive(|c: char| !c.is_ascii_alphanumeric())
                .map(|piece| {
                    let word = piece.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                    match redactor.known_print(word) {
                        Some(print) => piece.replacen(word, &print, 1),
                        None => piece.to_owned(),
                    }
                })
                .collect();
            assert_eq!(
                redactor.rename_decoder_fingerprints_in(text),
                renamed,
                "{text}"
            );
            changed += usize::from(full != *text) + usize::from(renamed != *text);
        }
        assert!(
            strings.len() > 10_000 && changed > 100,
            "{} strings, {changed} changed",
            strings.len()
        );
    }

    /// The first `http://` or `https://` is where a search of the
    /// lowercased text finds it, on real traffic and on cases made to trip
    /// a scan from `://`.
    #[test]
    fn urls_are_found_where_a_lowercase_search_finds_them() {
        let by_lowercasing = |text: &str| {
            let lower = text.to_ascii_lowercase();
            [lower.find("https://"), lower.find("http://")]
                .into_iter()
                .flatten()
                .min()
        };
        let mut texts = strings_of_the_sample_captures();
        texts.extend([
            "HTTPS://A".to_owned(),
            "hTtP://a".to_owned(),
            "://x http://y".to_owned(),
            "ftp://x https://y".to_owned(),
            "xhttps://y".to_owned(),
            "http:// https://".to_owned(),
            "é://http://".to_owned(),
            "https:/http://".to_owned(),
            String::new(),
        ]);
        let mut found = 0;
        for text in &texts {
            assert_eq!(find_url_start(text), by_lowercasing(text), "{text}");
            found += usize::from(by_lowercasing(text).is_some());
        }
        assert!(found > 1000, "{found} texts with a URL");
    }

    /// Every key and string value of every record of `captures/*.jsonl`:
    /// real headers, URLs, tokens and error messages.
    fn strings_of_the_sample_captures() -> Vec<String> {
        let captures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../captures");
        let mut strings = Vec::new();
        for entry in std::fs::read_dir(captures).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    collect_strings(&serde_json::from_str(line).unwrap(), &mut strings);
                }
            }
        }
        strings
    }

    fn collect_strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
            Value::Object(map) => map.iter().for_each(|(key, item)| {
                out.push(key.clone());
                collect_strings(item, out);
            }),
            _ => {}
        }
    }

    fn redactor() -> Redactor {
        Redactor::new(Salt::from_bytes([7; 16]))
    }

    #[test]
    fn fingerprints_depend_on_the_salt() {
        let a = Redactor::new(Salt::from_bytes([1; 16]));
        let b = Redactor::new(Salt::from_bytes([2; 16]));
        assert_eq!(a.fingerprint("hunter2"), a.fingerprint("hunter2"));
        assert_ne!(a.fingerprint("hunter2"), b.fingerprint("hunter2"));
        assert_ne!(Salt::random(), Salt::random());
        let print = a.fingerprint("hunter2");
        assert!(
            print.starts_with("<redacted hmac:") && print.len() == 28,
            "{print}"
        );
        // Not the unsalted SHA-256 of the secret, in any length.
        assert!(!print.contains(&decoder_fingerprint("hunter2")[..8]));
    }

    #[test]
    fn credential_headers_keep_their_scheme_and_lose_the_credentials() {
        let r = redactor();
        let bearer = r.header_value("Authorization", "Bearer abc.def.ghi");
        assert_eq!(bearer, format!("Bearer {}", r.fingerprint("abc.def.ghi")));
        let basic = r.header_value("proxy-authorization", "Basic dXNlcjpzM2NyZXQ=");
        assert!(basic.starts_with("Basic <redacted hmac:"), "{basic}");
        for (name, value) in [
            ("X-Registry-Auth", "eyJ1c2VybmFtZSI6ImEifQ=="),
            ("X-JFrog-Art-Api", "AKCp8k8sGzQ"),
            ("X-Api-Key", "k-123"),
            ("Api-Key", "k-123"),
            ("Private-Token", "glpat-123"),
            ("X-Amz-Security-Token", "FwoGZX"),
            ("X-Auth-Token", "t"),
            ("X-Vault-Token", "s.abc"),
        ] {
            assert_eq!(r.header_value(name, value), r.fingerprint(value), "{name}");
        }
        for (name, value) in [
            ("Docker-Upload-UUID", "abc"),
            ("WWW-Authenticate", r#"Bearer realm="https://a.test/token""#),
            ("Content-Type", "application/json"),
            ("Docker-Content-Digest", "sha256:00"),
        ] {
            assert_eq!(r.header_value(name, value), value, "{name}");
        }
    }

    #[test]
    fn cookies_keep_names_and_attributes() {
        let r = redactor();
        assert_eq!(
            r.header_value("Cookie", "a=1; b=2"),
            format!("a={}; b={}", r.fingerprint("1"), r.fingerprint("2"))
        );
        assert_eq!(
            r.header_value("Set-Cookie", "sid=xyz; Path=/; HttpOnly"),
            format!("sid={}; Path=/; HttpOnly", r.fingerprint("xyz"))
        );
    }

    #[test]
    fn query_keys_by_pattern_and_flags_kept() {
        let r = redactor();
        let redacted =
            r.url("https://r.test/token?service=r&access_token=a%2Bb&offline_token=true&x=1#frag");
        let encoded = utf8_percent_encode(&r.fingerprint("a+b"), QUERY_VALUE).to_string();
        assert_eq!(
            redacted,
            format!(
                "https://r.test/token?service=r&access_token={encoded}&offline_token=true&x=1#frag"
            )
        );
        let form = r.urlencoded("grant_type=password&username=bob&password=hunter2", false);
        assert!(!form.contains("hunter2"));
        assert!(form.contains("username=bob") && form.contains("grant_type=password"));
        assert_eq!(
            decode_component(form.rsplit_once('=').unwrap().1),
            r.fingerprint("hunter2")
        );
    }

    #[test]
    fn presigned_urls_lose_signatures_and_keep_expiry() {
        let r = redactor();
        let s3 = "https://bucket.s3.amazonaws.com/blob?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                  &X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request\
                  &X-Amz-Date=20240101T000000Z&X-Amz-Expires=1200\
                  &X-Amz-Security-Token=FwoGZXIvYXdzEJr&X-Amz-SignedHeaders=host\
                  &X-Amz-Signature=0123456789abcdef0123456789abcdef";
        let out = r.url(s3);
        for secret in ["AKIAEXAMPLE", "FwoGZXIvYXdzEJr", "0123456789abcdef"] {
            assert!(!out.contains(secret), "{out}");
        }
        for kept in [
            "X-Amz-Expires=1200",
            "X-Amz-Date=20240101T000000Z",
            "X-Amz-SignedHeaders=host",
        ] {
            assert!(out.contains(kept), "{out}");
        }
        let cdn = r.url("https://production.cloudflare.docker.com/r/x?verify=1700000000-AbCdEf%2B");
        assert!(!cdn.contains("AbCdEf"), "{cdn}");
        let azure = r.url("https://a.blob.core.windows.net/c/b?se=2024-01-01&sp=r&sig=s1gn%3D");
        assert!(
            !azure.contains("s1gn") && azure.contains("se=2024-01-01"),
            "{azure}"
        );
        let cloudfront =
            r.url("https://d.cloudfront.net/b?Expires=1&Signature=Zm9v&Key-Pair-Id=K2");
        assert!(
            !cloudfront.contains("Zm9v") && !cloudfront.contains("K2"),
            "{cloudfront}"
        );
        assert!(cloudfront.contains("Expires=1"));
    }

    #[test]
    fn masked_headers_for_display() {
        assert_eq!(
            header_masked("Authorization", "Basic dXNlcjpwYXNz"),
            "Basic ***"
        );
        assert_eq!(header_masked("Cookie", "a=1; b=2"), "a=***; b=***");
        assert_eq!(
            header_masked("Set-Cookie", "sid=x; Path=/"),
            "sid=***; Path=/"
        );
        assert_eq!(header_masked("X-Registry-Auth", "eyJ9"), "***");
        assert_eq!(header_masked("Location", "/v2/x?sig=abc"), "/v2/x?sig=***");
        assert_eq!(header_masked("Content-Type", "text/plain"), "text/plain");
    }

    #[test]
    fn masked_urls_for_display() {
        assert_eq!(
            url_masked("https://u:p@r.test/token?access_token=abc&scope=x&X-Amz-Signature=f"),
            "https://u:***@r.test/token?access_token=***&scope=x&X-Amz-Signature=***"
        );
        assert_eq!(url_masked("https://r.test/v2/"), "https://r.test/v2/");
    }

    #[test]
    fn url_userinfo_loses_passwords_and_lone_tokens() {
        let r = redactor();
        let out = r.url("https://user:p%40ss@r.test:5000/v2/?x=1");
        assert!(
            out.starts_with("https://user:%3Credacted%20hmac%3A"),
            "{out}"
        );
        assert!(
            out.ends_with("@r.test:5000/v2/?x=1") && !out.contains("p%40ss"),
            "{out}"
        );
        let lone = r.url("https://ghp_abcdef@github.com/x");
        assert!(!lone.contains("ghp_abcdef"), "{lone}");
        assert_eq!(r.url("/v2/x/blobs/uploads/1"), "/v2/x/blobs/uploads/1");
        assert_eq!(r.url("mailto:a@b"), "mailto:a@b");
    }

    #[test]
    fn json_keys_by_pattern_at_any_depth_and_of_any_type() {
        let r = redactor();
        let text = r#"{"accessToken":"a1","authorizationToken":"ecr1","identitytoken":"id1",
            "secret":"s1","auths":{"r.test":{"auth":"dXNlcjpwYXNz"}},"password":123456789,
            "credentials":{"user":"bob","nested":["x1"]},"token_type":"Bearer",
            "offline":true,"list":[{"refresh_token":"r1"}],"name":"keep","size":12}"#;
        let out = r.json_text(text).unwrap();
        for secret in [
            "a1",
            "ecr1",
            "id1",
            "s1",
            "dXNlcjpwYXNz",
            "123456789",
            "bob",
            "x1",
            "r1",
        ] {
            assert!(
                !out.contains(&format!("\"{secret}\"")) && !out.contains(":123456789"),
                "{secret}: {out}"
            );
        }
        for kept in [
            r#""token_type":"Bearer""#,
            r#""name":"keep""#,
            r#""size":12"#,
            r#""offline":true"#,
        ] {
            assert!(out.contains(kept), "{kept}: {out}");
        }
        // Formatting is kept when values are spelled plainly.
        assert!(out.contains("\n            \"credentials\""), "{out}");
        // Every value spelled so is replaced; the same text as a key stays.
        let print = r.fingerprint("s3cr3t");
        assert_eq!(
            r.json_text("{\"token\": \"s3cr3t\",\n \"s3cr3t\": 1, \"access_token\": \"s3cr3t\"}"),
            Some(format!(
                "{{\"token\": \"{print}\",\n \"s3cr3t\": 1, \"access_token\": \"{print}\"}}"
            ))
        );
        let escaped = r.json_text(r#"{"token":"\u0041BC"}"#).unwrap();
        assert_eq!(
            escaped,
            format!(r#"{{"token":"{}"}}"#, r.fingerprint("ABC"))
        );
        assert_eq!(r.json_text("not json"), None);
    }

    #[test]
    fn key_pattern_spares_descriptions_and_look_alikes() {
        for key in [
            "org.opencontainers.image.authors",
            "token_type",
            "expires_in",
            "signature_bytes",
            "realm",
            "scope",
            "digest",
            "mediaType",
            "keyword",
            "code",
            "publicKey",
            "auth_url",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
        for key in [
            "X-Amz-Signature",
            "x-goog-credential",
            "sig",
            "Key-Pair-Id",
            "verify",
            "client_secret",
            "passwd",
            "session",
            "JSESSIONID",
            "api_key",
            "registryAuth",
            "X-JFrog-Art-Api",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn credentials_in_free_text() {
        let r = redactor();
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let text = format!(
            "invalid token {jwt}; header was Basic dXNlcjpwYXNzd29yZA== and \
             redirect to https://s.test/b?X-Amz-Signature=abcdef0123 done"
        );
        let out = r.text(&text);
        for secret in [jwt, "dXNlcjpwYXNzd29yZA==", "abcdef0123"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.starts_with("invalid token <redacted hmac:"), "{out}");
        assert!(out.ends_with(" done"), "{out}");
        for prose in [
            "Basic auth failed",
            "401 Unauthorized: Bearer challenge, realm https://a.test/token",
            "Basic Credentials of user",
        ] {
            assert_eq!(r.text(prose), prose);
        }
        assert!(!r.text("Basic dXNlcjpwYXNz").contains("dXNlcjpwYXNz"));
    }

    #[test]
    fn decoder_fingerprints_become_the_exports() {
        let r = redactor();
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        let header = r.header_value("Authorization", &format!("Bearer {token}"));
        let decoder = decoder_fingerprint(token);
        let mut annotations = serde_json::json!({
            "bearer": {"fingerprint": decoder, "issued_by": 2},
            "token": {"fingerprint": "000000000000", "refresh_token": decoder, "expires_in": 300},
            "annotations": [{"text": format!("token {decoder} was issued by flow #2")}],
            "upload": {"session": 1},
            "challenge": "Bearer realm=https://a.test/token,service=a",
        });
        r.annotations(&mut annotations);
        let print = r.fingerprint(token);
        assert_eq!(header, format!("Bearer {print}"));
        assert_eq!(annotations["bearer"]["fingerprint"], print.as_str());
        assert_eq!(annotations["token"]["refresh_token"], print.as_str());
        assert_eq!(annotations["token"]["fingerprint"], "<redacted>");
        assert_eq!(annotations["token"]["expires_in"], 300);
        assert_eq!(annotations["upload"]["session"], 1);
        assert_eq!(
            annotations["challenge"],
            "Bearer realm=https://a.test/token,service=a"
        );
        assert_eq!(
            annotations["annotations"][0]["text"],
            format!("token {print} was issued by flow #2")
        );

        // inspect --json keeps the decoder's names but not quoted secrets.
        let mut analysis = serde_json::json!({
            "bearer": {"fingerprint": decoder},
            "token": {"refresh_token": decoder},
            "redirect_to": "https://s.test/b?X-Amz-Signature=abcdef&X-Amz-Expires=60",
        });
        r.analysis(&mut analysis);
        assert_eq!(analysis["bearer"]["fingerprint"], decoder.as_str());
        assert_eq!(analysis["token"]["refresh_token"], decoder.as_str());
        let redirect = analysis["redirect_to"].as_str().unwrap();
        assert!(!redirect.contains("abcdef") && redirect.contains("X-Amz-Expires=60"));
    }

    /// `inspect --json` is written by several threads, each with its own
    /// copy of the redactor: a secret one copy met earlier must not change
    /// how another names the decoder's tokens in prose.
    #[test]
    fn the_analysis_walk_keeps_decoder_names_in_prose_whatever_came_before() {
        let secret = "s3cret-refresh-token";
        let decoder = decoder_fingerprint(secret);
        let prose = format!("token {decoder} was issued by flow #2");
        let mut analysis = serde_json::json!({
            "a": {"refresh_token": secret},
            "b": prose,
        });
        Redactor::new(Salt::from_bytes([3; 16])).analysis(&mut analysis);
        assert_ne!(analysis["a"]["refresh_token"], secret);
        assert_eq!(analysis["b"], prose.as_str());
    }
}
