//! Path names: case-insensitive, with an optional `Prefix.` (`"test_func"` and
//! `"Path.TEST_FUNC"` both name `TEST_FUNC`).

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// The normalised name of a path: the part after the last `.`, upper-cased.
///
/// # Examples
///
/// ```
/// use lpipe_core::pipeline::PathName;
/// assert_eq!(PathName::new("Path.test_func"), PathName::new("TEST_FUNC"));
/// assert_eq!(PathName::new("test_func").as_str(), "TEST_FUNC");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathName(Arc<str>);

impl PathName {
    /// Normalises a name.
    pub fn new(name: impl AsRef<str>) -> Self {
        PathName(normalize(name.as_ref()).into())
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Normalises a path name: the part after the last `.`, ASCII upper-cased, surrounding
/// whitespace removed.
pub(crate) fn normalize(name: &str) -> String {
    let name = name.trim();
    let name = name.rsplit('.').next().unwrap_or(name);
    name.to_ascii_uppercase()
}

/// Looks a name up without allocating when it is already normalised.
pub(crate) fn needs_normalizing(name: &str) -> bool {
    name.bytes()
        .any(|b| b == b'.' || b.is_ascii_lowercase() || b.is_ascii_whitespace())
}

impl Borrow<str> for PathName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Anything that names a path: strings, [`PathName`], and the user's own enums (see
/// [`path_enum!`](crate::path_enum)).
pub trait IntoPathName {
    /// The normalised name.
    fn into_path_name(self) -> PathName;
}

impl IntoPathName for PathName {
    fn into_path_name(self) -> PathName {
        self
    }
}

impl IntoPathName for &PathName {
    fn into_path_name(self) -> PathName {
        self.clone()
    }
}

impl IntoPathName for &str {
    fn into_path_name(self) -> PathName {
        PathName::new(self)
    }
}

impl IntoPathName for String {
    fn into_path_name(self) -> PathName {
        PathName::new(self)
    }
}

impl IntoPathName for &String {
    fn into_path_name(self) -> PathName {
        PathName::new(self)
    }
}

/// Declares an enum of path names, as Python lpipe's `class Path(Enum)`.
///
/// The enum gets `Clone`, `Copy`, `Debug`, `PartialEq`, `Eq`, `Hash`, an `as_str` method, an
/// `ALL` constant listing every variant, and [`IntoPathName`], so its variants can be used
/// wherever a path name is expected.
///
/// # Examples
///
/// ```
/// lpipe_core::path_enum! {
///     /// The paths of this Lambda.
///     pub enum Path { SUBSCRIBE, UNSUBSCRIBE }
/// }
/// use lpipe_core::pipeline::IntoPathName;
/// assert_eq!(Path::SUBSCRIBE.as_str(), "SUBSCRIBE");
/// assert_eq!(Path::ALL.len(), 2);
/// assert_eq!(Path::UNSUBSCRIBE.into_path_name().as_str(), "UNSUBSCRIBE");
/// ```
#[macro_export]
macro_rules! path_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types, missing_docs)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),*
        }

        #[allow(dead_code)]
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The variant's name.
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant)),*
                }
            }
        }

        impl $crate::pipeline::IntoPathName for $name {
            fn into_path_name(self) -> $crate::pipeline::PathName {
                $crate::pipeline::PathName::new(self.as_str())
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_accept_a_prefix() {
        for raw in [
            "TEST_FUNC",
            "test_func",
            "Path.TEST_FUNC",
            "Path.test_func",
            " test_func ",
        ] {
            assert_eq!(PathName::new(raw).as_str(), "TEST_FUNC", "{raw}");
        }
        assert!(!needs_normalizing("TEST_FUNC"));
        assert!(needs_normalizing("Path.TEST_FUNC"));
        assert!(needs_normalizing("test"));
    }
}
