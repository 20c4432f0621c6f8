//! Placeholders in configured request parameters: which `{{name}}`s a value holds (checked
//! when an entry is resolved) and filling them when a request is built (`client.rs`).

/// The `{{name}}` placeholders in a parameter value.
pub(crate) fn placeholders(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        let start = rest.find("{{")?;
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        rest = &after[end + 2..];
        Some(after[..end].trim())
    })
}

/// Values for placeholders in one request; `None` fills as empty.
#[derive(Default)]
pub(crate) struct Vars<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub scopes: Option<&'a str>,
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> &str {
        let value = match name {
            "client_id" => self.client_id,
            "client_secret" => self.client_secret,
            "redirect_uri" => self.redirect_uri,
            "scopes" => self.scopes,
            "state" => self.state,
            "code" => self.code,
            "code_verifier" => self.code_verifier,
            "code_challenge" => self.code_challenge,
            "refresh_token" => self.refresh_token,
            "code_challenge_method" => self.code_challenge.map(|_| "S256"),
            // Our scopes are already the union of old and new.
            _ => None,
        };
        value.unwrap_or("")
    }

    /// Fills `{{name}}`s; `None` when the value is empty (as configured, or once filled):
    /// the parameter is then left out, so `scope: ""` removes the standard one.
    fn fill(&self, value: &str) -> Option<String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        let mut had = false;
        while let Some(start) = rest.find("{{") {
            let Some(end) = rest[start + 2..].find("}}") else {
                break;
            };
            had = true;
            out.push_str(&rest[..start]);
            out.push_str(self.get(rest[start + 2..start + 2 + end].trim()));
            rest = &rest[start + 2 + end + 2..];
        }
        out.push_str(rest);
        let value = if had { out.trim().to_owned() } else { out };
        (!value.is_empty()).then_some(value)
    }

    /// Applies configured parameters over `params`: same key replaces, new key appends,
    /// a placeholder that fills to nothing removes.
    pub fn merge(&self, params: &mut Vec<(String, String)>, extra: &[(String, String)]) {
        for (key, value) in extra {
            match self.fill(value) {
                Some(v) => match params.iter_mut().find(|(k, _)| k == key) {
                    Some(existing) => existing.1 = v,
                    None => params.push((key.clone(), v)),
                },
                None => params.retain(|(k, _)| k != key),
            }
        }
    }
}
