//! The built-in profiles as build.rs parsed them: each file's TOML as a static
//! tree of values with their byte spans, and a serde `Deserializer` over that
//! tree. Loading a built-in then runs no TOML parser (it was most of the cost
//! of loading one), only the `RawProfile` deserialization and the merge that a
//! profile file goes through, so values and origins come out the same.
//!
//! Owns no schema: the tree is the TOML's own structure, and spans are what
//! `toml::Spanned` would have recorded.

use std::fmt;

use serde::de::value::{
    BorrowedStrDeserializer, MapAccessDeserializer, MapDeserializer, SeqDeserializer,
};
use serde::de::{self, IntoDeserializer, Visitor};
use serde_spanned::de::{SpannedDeserializer, is_spanned};

/// One TOML value and the bytes of its file it spans.
#[derive(Debug)]
pub(super) struct Value {
    start: usize,
    end: usize,
    node: Node,
}

#[derive(Debug)]
enum Node {
    Str(&'static str),
    Int(i64),
    Bool(bool),
    Array(&'static [Value]),
    Table(&'static [(&'static str, Value)]),
}

// `TREES`: (file stem, whole document) for every profiles/*.toml.
include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The tree of the built-in `name` (its file stem).
pub(super) fn tree(name: &str) -> Option<&'static Value> {
    TREES.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The names of every tree, for the test that pins them to `BUILTINS`.
#[cfg(test)]
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    TREES.iter().map(|(n, _)| *n)
}

/// Why a tree did not fit the schema. Never located: the caller parses the
/// text instead, and that error is located.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct DeError(String);

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

impl IntoDeserializer<'static, DeError> for &'static Value {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

// Mirrors toml's `ValueDeserializer` case by case: a value is always present
// (TOML has no null), a `Spanned` gets the value's span, and an enum is a
// string (unit variant) or a one-key table (newtype variant).
impl de::Deserializer<'static> for &'static Value {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node {
            Node::Str(s) => visitor.visit_borrowed_str(s),
            Node::Int(n) => visitor.visit_i64(*n),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let v = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(v)
            }
            Node::Table(entries) => {
                let mut map = MapDeserializer::new(entries.iter().map(|(k, v)| (*k, v)));
                let v = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(v)
            }
        }
    }

    fn deserialize_option<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'static>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'static>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if is_spanned(name) {
            return visitor.visit_map(SpannedDeserializer::new(self, self.start..self.end));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'static>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node {
            Node::Str(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            Node::Table([(k, v)]) => visitor.visit_enum(MapAccessDeserializer::new(
                MapDeserializer::new(std::iter::once((*k, v))),
            )),
            _ => Err(de::Error::custom("wanted a string or a table of one key")),
        }
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'static>>
        bool u8 u16 u32 u64 u128 i8 i16 i32 i64 i128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier
    }
}
