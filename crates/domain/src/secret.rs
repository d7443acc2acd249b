//! Credentials in memory: never shown in `Debug`, `Display` or logs.

/// A value that holds a credential (a password, a key). [`Secret::expose`] is the one way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let secret = Secret::new("Server=x;Password=hunter2");
        assert_eq!(secret.expose(), "Server=x;Password=hunter2");
        for text in [format!("{secret:?}"), format!("{secret}")] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
