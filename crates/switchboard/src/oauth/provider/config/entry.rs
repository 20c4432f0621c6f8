//! Reading a provider entry's JSON: objects that know their key path, so every error names
//! where it is (`oauth2.token_request.endpoint`), and the checks the request parsers share.

use serde_json::{Map, Value};

use super::{ProviderConfigError, err};
use crate::config::AuthProviderConfig;

/// The keys of an entry besides the ones every provider has (id, type, client...).
const TOP_KEYS: &[&str] = &[
    "oauth2",
    "authorization",
    "token",
    "scopes",
    "revoke",
    "user_info",
    "token_lifetime",
];
const OAUTH2_KEYS: &[&str] = &[
    "scope_delimiter",
    "pkce",
    "authorize_request",
    "token_request",
    "refresh_request",
    "user_info_request",
    "revoke_request",
    // Arcade's admin API form carries the client inside `oauth2`.
    "client_id",
    "client_secret",
    // Ours: Microsoft's `{tenant}`.
    "tenant",
    // Arcade: accepted and not used (no introspection here).
    "token_introspection_request",
];

/// A provider entry's own keys (`AuthProviderConfig::extra`): the top level and Arcade's
/// `oauth2` section, both checked for unknown keys.
pub(super) struct Entry<'a> {
    pub root: Obj<'a>,
    pub oauth2: Option<Obj<'a>>,
}

impl<'a> Entry<'a> {
    /// `empty` stands in for an entry with no keys of its own.
    pub fn read(
        cfg: &'a AuthProviderConfig,
        empty: &'a Map<String, Value>,
    ) -> Result<Self, ProviderConfigError> {
        let root = match &cfg.extra {
            Value::Object(map) => Obj::root(map),
            Value::Null => Obj::root(empty),
            _ => return err("", "a provider entry must be a mapping"),
        };
        root.check_keys(TOP_KEYS)?;
        let oauth2 = root.obj("oauth2")?;
        if let Some(o) = &oauth2 {
            o.check_keys(OAUTH2_KEYS)?;
        }
        Ok(Entry { root, oauth2 })
    }

    /// `oauth2.{key}` as a mapping.
    pub fn oauth2_obj(&self, key: &str) -> Result<Option<Obj<'a>>, ProviderConfigError> {
        match &self.oauth2 {
            Some(o) => o.obj(key),
            None => Ok(None),
        }
    }

    /// `oauth2.{key}` as a string.
    pub fn oauth2_string(&self, key: &str) -> Result<Option<String>, ProviderConfigError> {
        match &self.oauth2 {
            Some(o) => o.string(key),
            None => Ok(None),
        }
    }

    /// A short-form section (`authorization`, `token`, `revoke`, `user_info`), once its
    /// keys and `method` are checked.
    pub fn short_form(
        &self,
        key: &str,
        known: &[&str],
        methods: &[&str],
    ) -> Result<ShortForm<'a>, ProviderConfigError> {
        let Some(o) = self.root.obj(key)? else {
            return Ok(ShortForm {
                section: None,
                url: None,
            });
        };
        o.check_keys(known)?;
        let url = o.string("url")?.map(|u| (u, o.key_path("url")));
        if !methods.is_empty() {
            check_method(&o, methods)?;
        }
        Ok(ShortForm {
            section: Some(o),
            url,
        })
    }
}

/// A template's fixed pairs (parameters, headers), owned so config can add to them.
pub(super) fn owned_pairs(pairs: Option<&[(&str, &str)]>) -> Vec<(String, String)> {
    pairs
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A short-form section, when given, and its `url` with the key path.
pub(super) struct ShortForm<'a> {
    pub section: Option<Obj<'a>>,
    pub url: Option<(String, String)>,
}

/// `method`, when given, must be one of `allowed` (any case).
pub(super) fn check_method(o: &Obj<'_>, allowed: &[&str]) -> Result<(), ProviderConfigError> {
    if let Some(method) = o.string("method")?
        && !allowed.contains(&method.to_ascii_uppercase().as_str())
    {
        return err(
            o.key_path("method"),
            format!("must be {}", allowed.join(" or ")),
        );
    }
    Ok(())
}

/// The endpoint given by the long or the short form; both is ambiguous.
pub(super) fn one_of(
    long: &Option<(String, String)>,
    short: &Option<(String, String)>,
) -> Result<Option<(String, String)>, ProviderConfigError> {
    match (long, short) {
        (Some((_, long_path)), Some((_, short_path))) => err(
            short_path.as_str(),
            format!("give either this or {long_path}, not both"),
        ),
        (Some(x), None) | (None, Some(x)) => Ok(Some(x.clone())),
        (None, None) => Ok(None),
    }
}

/// Fills an endpoint's `{public_url}`, `{tenant}` and `{client_id}` and checks the result
/// is an absolute http(s) URL; an error names `path`, where the URL was written.
pub(super) struct UrlFiller<'a> {
    pub public_url: &'a str,
    pub tenant: String,
    /// The client id as a path segment.
    pub client_id_segment: String,
}

impl<'a> UrlFiller<'a> {
    pub fn new(public_url: &'a str, tenant: String, client_id: &str) -> Self {
        UrlFiller {
            public_url: public_url.trim_end_matches('/'),
            tenant,
            client_id_segment: url::form_urlencoded::byte_serialize(client_id.as_bytes())
                .collect::<String>()
                .replace('+', "%20"),
        }
    }

    pub fn fill(&self, url: &str, path: &str) -> Result<String, ProviderConfigError> {
        let url = url
            .replace("{public_url}", self.public_url)
            .replace("{tenant}", &self.tenant)
            .replace("{client_id}", &self.client_id_segment);
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(url),
            _ => err(path, "must be an absolute http(s) URL"),
        }
    }

    /// An endpoint every provider has: as [`Self::pick`], and without either an error at
    /// `required_path`, where a custom provider must give it.
    pub fn required(
        &self,
        configured: &Option<(String, String)>,
        template: Option<&str>,
        required_path: &str,
    ) -> Result<String, ProviderConfigError> {
        match self.pick(configured, template)? {
            Some(url) => Ok(url),
            None => err(required_path, "required for a custom provider"),
        }
    }

    /// An override from config (with its key path), else the template's URL (an error
    /// there names `provider_id`).
    pub fn pick(
        &self,
        configured: &Option<(String, String)>,
        template: Option<&str>,
    ) -> Result<Option<String>, ProviderConfigError> {
        match (configured, template) {
            (Some((url, path)), _) => self.fill(url, path).map(Some),
            (None, Some(url)) => self.fill(url, "provider_id").map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// A JSON object in the entry, with its key path for errors.
pub(super) struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub path: String,
}

impl<'a> Obj<'a> {
    pub fn root(map: &'a Map<String, Value>) -> Self {
        Obj {
            map,
            path: String::new(),
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn check_keys(&self, known: &[&str]) -> Result<(), ProviderConfigError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => err(
                self.key_path(key),
                format!("unknown key (known here: {})", known.join(", ")),
            ),
            None => Ok(()),
        }
    }

    pub fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: self.key_path(key),
            })),
            Some(_) => err(self.key_path(key), "must be a mapping"),
        }
    }

    /// A string (numbers accepted as written); empty counts as absent.
    pub fn string(&self, key: &str) -> Result<Option<String>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => err(self.key_path(key), "must be a string"),
        }
    }

    /// A boolean, or `true`/`false` as text (what `${env:...}` expands to).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => err(self.key_path(key), "must be true or false"),
        }
    }

    /// A list of strings, or one string split on `delimiter`.
    pub fn strings(
        &self,
        key: &str,
        delimiter: &str,
    ) -> Result<Option<Vec<String>>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(delimiter)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => err(format!("{}[{i}]", self.key_path(key)), "must be a string"),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => err(self.key_path(key), "must be a list of strings"),
        }
    }
}
