//! Turns the JSON Schema schemars derives for a tool's input type into Arcade's
//! `input.parameters[]` and `value_schema` (`reference/arcade-api.md` §1 Schemas, §2).
//!
//! Arcade's value types are few: string, integer, number, boolean, json and array (with a
//! primitive `inner_val_type`). Anything richer (nested structs, maps, unions) is `json`,
//! with `properties` filled in where the shape is a plain object.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};
use switchboard_wire::{InputParameter, ValueSchema};

/// Why a type cannot be a tool's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("a tool's input must be a struct with named fields (its schema is `{0}`)")]
    NotAnObject(String),
}

/// How deep nested object `properties` are described before giving up (recursive types).
const MAX_DEPTH: usize = 8;

/// The Arcade parameters for input type `T`, in the struct's field order.
pub fn parameters_for<T: JsonSchema + DeserializeOwned>() -> Result<Vec<InputParameter>, SchemaError>
{
    let root = root_schema::<T>();
    let r = Resolver::new(&root);
    let obj = r.resolve(&root);
    if schema_type(obj) != Some("object") {
        let shown = schema_type(obj).unwrap_or("any").to_owned();
        return Err(SchemaError::NotAnObject(shown));
    }
    let empty = Map::new();
    let props = obj
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();

    // JSON Schema objects lose field order (serde_json's Map is sorted here); serde's
    // derive still knows it, and Arcade lists parameters in signature order.
    let mut names: Vec<&str> = field_order::<T>()
        .unwrap_or(&[])
        .iter()
        .copied()
        .filter(|n| props.contains_key(*n))
        .collect();
    for name in props.keys() {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }

    Ok(names
        .into_iter()
        .filter_map(|name| {
            let prop = props.get(name)?;
            let value_schema = r.value_schema(prop, 0);
            Some(InputParameter {
                name: name.to_owned(),
                required: required.contains(&name),
                description: r.description(prop),
                value_schema: ValueSchema {
                    description: None,
                    ..value_schema
                },
                inferrable: true,
            })
        })
        .collect())
}

/// Arcade's value schema for type `T` (e.g. a tool's output).
pub fn value_schema_for<T: JsonSchema>() -> ValueSchema {
    let root = root_schema::<T>();
    let r = Resolver::new(&root);
    r.value_schema(&root, 0)
}

fn root_schema<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

struct Resolver<'a> {
    defs: Option<&'a Map<String, Value>>,
}

impl<'a> Resolver<'a> {
    fn new(root: &'a Value) -> Self {
        let defs = root
            .get("$defs")
            .or_else(|| root.get("definitions"))
            .and_then(Value::as_object);
        Resolver { defs }
    }

    /// Follows local `$ref`s, and steps through `anyOf`/`oneOf` unions whose only other
    /// branch is `null` (how schemars writes `Option<T>`).
    fn resolve(&self, mut s: &'a Value) -> &'a Value {
        for _ in 0..32 {
            if let Some(target) = s.get("$ref").and_then(Value::as_str) {
                let name = target.rsplit('/').next().unwrap_or(target);
                match self.defs.and_then(|d| d.get(name)) {
                    Some(next) => {
                        s = next;
                        continue;
                    }
                    None => return s,
                }
            }
            if let Some(branches) = union(s) {
                let mut non_null = branches.iter().filter(|b| !is_null(b));
                if let (Some(only), None) = (non_null.next(), non_null.next()) {
                    s = only;
                    continue;
                }
            }
            return s;
        }
        s
    }

    fn description(&self, prop: &Value) -> Option<String> {
        prop.get("description")
            .or_else(|| self.resolve(prop).get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn value_schema(&self, raw: &'a Value, depth: usize) -> ValueSchema {
        let s = self.resolve(raw);
        let val_type = arcade_type(s);
        let mut vs = ValueSchema {
            val_type: val_type.to_owned(),
            description: self.description(raw),
            ..ValueSchema::default()
        };
        match val_type {
            "string" => vs.enum_values = string_enum(s),
            "array" => {
                let items = s.get("items").map(|i| self.resolve(i));
                let inner = match items.map(arcade_type) {
                    // Arcade's inner type is a primitive: a list of lists is json.
                    Some("array") | None => "json",
                    Some(t) => t,
                };
                vs.inner_val_type = Some(inner.to_owned());
                if let Some(items) = items {
                    vs.enum_values = string_enum(items);
                    if inner == "json" && depth < MAX_DEPTH {
                        vs.inner_properties = self.properties(items, depth + 1);
                    }
                }
            }
            "json" if depth < MAX_DEPTH => vs.properties = self.properties(s, depth + 1),
            _ => {}
        }
        vs
    }

    fn properties(&self, s: &'a Value, depth: usize) -> Option<Map<String, Value>> {
        let props = s.get("properties")?.as_object()?;
        Some(
            props
                .iter()
                .map(|(name, prop)| {
                    let vs = self.value_schema(prop, depth);
                    (
                        name.clone(),
                        serde_json::to_value(vs).unwrap_or(Value::Null),
                    )
                })
                .collect(),
        )
    }
}

fn union(s: &Value) -> Option<&Vec<Value>> {
    s.get("anyOf")
        .or_else(|| s.get("oneOf"))
        .and_then(Value::as_array)
}

fn is_null(s: &Value) -> bool {
    schema_type(s) == Some("null") || s.get("const").is_some_and(Value::is_null)
}

/// The schema's `type`, skipping `"null"` in a type list.
fn schema_type(s: &Value) -> Option<&str> {
    match s.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn arcade_type(s: &Value) -> &'static str {
    match schema_type(s) {
        Some("string") => "string",
        Some("integer") => "integer",
        Some("number") => "number",
        Some("boolean") => "boolean",
        Some("array") => "array",
        Some(_) => "json",
        // An enum whose variants carry doc comments is a union of string consts.
        None if string_enum(s).is_some() => "string",
        None => "json",
    }
}

/// The allowed values of a string enum, written as `enum`, `const` or a union of either.
fn string_enum(s: &Value) -> Option<Vec<String>> {
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect();
    }
    if let Some(c) = s.get("const") {
        return c.as_str().map(|c| vec![c.to_owned()]);
    }
    let mut out = Vec::new();
    for branch in union(s)? {
        if is_null(branch) {
            continue;
        }
        out.extend(string_enum(branch)?);
    }
    (!out.is_empty()).then_some(out)
}

/// The field names serde's derive declares for `T`, in declaration order: a probe
/// deserializer records them from `deserialize_struct` and stops.
fn field_order<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

#[derive(Debug)]
struct ProbeDone;

impl std::fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for ProbeDone {}

impl de::Error for ProbeDone {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        ProbeDone
    }
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = ProbeDone;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeDone> {
        Err(ProbeDone)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeDone> {
        *self.0 = Some(fields);
        Err(ProbeDone)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Style {
        Formal,
        Casual,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    enum Documented {
        /// The first.
        First,
        /// The second.
        Second,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        x: i32,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Input {
        /// Who to greet.
        zname: String,
        /// How to greet.
        style: Option<Style>,
        count: u32,
        ratio: f64,
        #[serde(default)]
        loud: bool,
        tags: Vec<String>,
        styles: Vec<Style>,
        documented: Documented,
        inner: Inner,
        many: Vec<Inner>,
        anything: Value,
        #[serde(rename = "renamedField")]
        renamed: Option<String>,
    }

    fn params() -> Vec<InputParameter> {
        parameters_for::<Input>().unwrap()
    }

    fn param(name: &str) -> InputParameter {
        params().into_iter().find(|p| p.name == name).unwrap()
    }

    #[test]
    fn parameters_keep_the_struct_field_order() {
        let names: Vec<String> = params().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "zname",
                "style",
                "count",
                "ratio",
                "loud",
                "tags",
                "styles",
                "documented",
                "inner",
                "many",
                "anything",
                "renamedField"
            ]
        );
    }

    #[test]
    fn options_and_defaults_are_optional_and_the_rest_required() {
        assert!(param("zname").required);
        assert!(param("count").required);
        assert!(!param("style").required);
        assert!(!param("loud").required);
        assert!(!param("renamedField").required);
    }

    #[test]
    fn doc_comments_become_descriptions() {
        assert_eq!(param("zname").description.as_deref(), Some("Who to greet."));
        assert_eq!(param("style").description.as_deref(), Some("How to greet."));
    }

    #[test]
    fn primitive_types_map_to_arcade_val_types() {
        let t = |n: &str| param(n).value_schema.val_type;
        assert_eq!(t("zname"), "string");
        assert_eq!(t("count"), "integer");
        assert_eq!(t("ratio"), "number");
        assert_eq!(t("loud"), "boolean");
        assert_eq!(t("anything"), "json");
        assert_eq!(t("renamedField"), "string");
    }

    #[test]
    fn string_enums_list_their_values_even_when_optional_or_documented() {
        let style = param("style").value_schema;
        assert_eq!(style.val_type, "string");
        assert_eq!(
            style.enum_values,
            Some(vec!["formal".into(), "casual".into()])
        );
        let documented = param("documented").value_schema;
        assert_eq!(documented.val_type, "string");
        assert_eq!(
            documented.enum_values,
            Some(vec!["First".into(), "Second".into()])
        );
    }

    #[test]
    fn arrays_carry_their_inner_type() {
        let tags = param("tags").value_schema;
        assert_eq!(
            (tags.val_type.as_str(), tags.inner_val_type.as_deref()),
            ("array", Some("string"))
        );
        let styles = param("styles").value_schema;
        assert_eq!(styles.inner_val_type.as_deref(), Some("string"));
        assert_eq!(
            styles.enum_values,
            Some(vec!["formal".into(), "casual".into()])
        );
        let many = param("many").value_schema;
        assert_eq!(many.inner_val_type.as_deref(), Some("json"));
        assert!(many.inner_properties.unwrap().contains_key("x"));
    }

    #[test]
    fn nested_structs_are_json_with_properties() {
        let inner = param("inner").value_schema;
        assert_eq!(inner.val_type, "json");
        let props = inner.properties.unwrap();
        assert_eq!(props["x"]["val_type"], "integer");
    }

    #[test]
    fn a_non_struct_input_is_refused() {
        assert!(matches!(
            parameters_for::<String>(),
            Err(SchemaError::NotAnObject(_))
        ));
    }

    #[test]
    fn an_empty_struct_has_no_parameters() {
        #[derive(Deserialize, JsonSchema)]
        struct Empty {}
        assert!(parameters_for::<Empty>().unwrap().is_empty());
    }
}
