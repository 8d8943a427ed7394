//! Client API tokens (`auth.tokens`): each bearer token has a role (read < write <
//! admin) and the tenants it may touch (none listed: every tenant). Parsed from the
//! TOML `[[auth.tokens]]` array or the text form `TOKEN:ROLE[:tenant1|tenant2],...`;
//! looked up in constant time. The HTTP middleware is `crate::http::auth`.

use std::fmt;

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role `{other}` must be read, write or admin")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        })
    }
}

/// One configured token. `Debug` never prints the token itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub role: Role,
    /// Empty: every tenant.
    pub tenants: Vec<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .field("tenants", &self.tenants)
            .finish()
    }
}

impl Token {
    /// Whether this token may touch `tenant`.
    pub fn allows_tenant(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// Whether this token may touch every tenant.
    pub fn all_tenants(&self) -> bool {
        self.tenants.is_empty()
    }

    fn check(self) -> Result<Token, String> {
        if self.token.is_empty() {
            return Err("a token must not be empty".into());
        }
        if self
            .token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("a token must not contain spaces or control characters".into());
        }
        if self.tenants.iter().any(|t| t.is_empty() || t.len() > 128) {
            return Err("tenant names must be 1 to 128 bytes".into());
        }
        Ok(self)
    }
}

/// The text form: `TOKEN:ROLE[:tenant1|tenant2],...` (empty: no tokens).
pub fn parse_text(value: &str) -> Result<Vec<Token>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(i, entry)| {
            let mut parts = entry.splitn(3, ':');
            let token = parts.next().unwrap_or_default().trim().to_string();
            let role = parts
                .next()
                .ok_or_else(|| format!("entry {}: expected TOKEN:ROLE[:TENANTS]", i + 1))?;
            let tenants = parts.next().map_or_else(Vec::new, |t| {
                t.split('|')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            });
            let role = role.parse().map_err(|e| format!("entry {}: {e}", i + 1))?;
            Token {
                token,
                role,
                tenants,
            }
            .check()
            .map_err(|e| format!("entry {}: {e}", i + 1))
        })
        .collect()
}

/// The TOML form: an array of tables `{ token, role, tenants = [...] }`.
pub fn parse_toml(items: &[toml::Value]) -> Result<Vec<Token>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |e: String| format!("[[auth.tokens]] entry {}: {e}", i + 1);
            let t = item
                .as_table()
                .ok_or_else(|| at("must be a table".into()))?;
            let text = |k: &str| t.get(k).and_then(toml::Value::as_str);
            let token = text("token").ok_or_else(|| at("needs `token`".into()))?;
            let role = text("role").ok_or_else(|| at("needs `role`".into()))?;
            let tenants = match t.get("tenants") {
                None => Vec::new(),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| at("`tenants` must be an array of strings".into()))?,
                Some(_) => return Err(at("`tenants` must be an array of strings".into())),
            };
            Token {
                token: token.to_string(),
                role: role.parse().map_err(at)?,
                tenants,
            }
            .check()
            .map_err(at)
        })
        .collect()
}

/// The configured token equal to `given`. Every token is compared, each in constant
/// time, so the answer's timing tells neither how much of a token matched nor which.
pub fn find<'a>(tokens: &'a [Token], given: &str) -> Option<&'a Token> {
    let mut found = None;
    for t in tokens {
        if metacenter_raft::peer::secret_matches(given.as_bytes(), t.token.as_bytes()) {
            found = Some(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        let t = parse_text("r1:read, w1:WRITE:a|b ,adm:admin:").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].role, t[0].tenants.len()), (Role::Read, 0));
        assert_eq!(t[1].tenants, ["a", "b"]);
        assert!(t[2].all_tenants() && t[2].role == Role::Admin);
        assert!(parse_text("").unwrap().is_empty());
        let e = parse_text("x:read,y:root").unwrap_err();
        assert!(e.contains("entry 2") && e.contains("root"), "{e}");
        assert!(parse_text("lonely").is_err());
        assert!(parse_text(":read").is_err());
        assert!(!format!("{:?}", t[0]).contains("r1"));
    }

    #[test]
    fn lookup_and_roles() {
        let t = parse_text("aaa:read:x,bbb:admin").unwrap();
        assert_eq!(find(&t, "aaa").map(|t| t.role), Some(Role::Read));
        assert!(find(&t, "aa").is_none() && find(&t, "aaaa").is_none());
        assert!(find(&t, "").is_none());
        assert!(t[0].allows_tenant("x") && !t[0].allows_tenant("y"));
        assert!(t[1].allows_tenant("y"));
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }
}
