//! Checks a call's input against a tool's declared parameters. The gateway runs it before
//! any worker is called and a `switchboard-tdk` worker runs it before any handler, so both
//! ends refuse the same input with the same message, naming the parameter a model got
//! wrong.
//!
//! The rules, in the order they are applied (the first failure is reported):
//! 1. a key that names no parameter is refused (a misspelt name is the likeliest mistake,
//!    and dropping it silently would run the tool without what the caller meant);
//! 2. a required parameter that is absent or `null` is missing, whatever its type
//!    (`json` included, as Arcade's own pydantic models refuse it); an optional one that
//!    is `null` counts as absent;
//! 3. the value must be of the declared `val_type` (`integer` means a JSON integer, so
//!    `1.5` and `1.0` are not); `json` and unknown types accept any value;
//! 4. a non-empty `enum` limits a string value, or each string item of an array (Arcade
//!    writes a `list[Enum]`'s values on the array's schema); an empty one limits nothing;
//! 5. each item of an array must be of `inner_val_type`, named `param[i]`.
//!
//! Must not: know tools beyond their parameters, or deserialize into a tool's input type.

use serde_json::{Map, Value};

use crate::{InputParameter, ToolCallError, ValueSchema, error_kind};

/// Why an input was refused. `Display` is the reason alone; [`InputError::tool_call_error`]
/// is how both ends report it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("missing required parameter '{0}'")]
    Missing(String),
    #[error("parameter '{name}' must be {expected}, got {got}")]
    WrongType {
        name: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("parameter '{name}' must be one of [{allowed}], got {got}")]
    NotInEnum {
        name: String,
        allowed: String,
        got: String,
    },
    #[error("unknown parameter '{name}' (expected: {known})")]
    Unknown { name: String, known: String },
}

impl InputError {
    /// The parameter at fault; `name[i]` for an array's item.
    pub fn parameter(&self) -> &str {
        match self {
            InputError::Missing(n) => n,
            InputError::WrongType { name, .. }
            | InputError::NotInEnum { name, .. }
            | InputError::Unknown { name, .. } => name,
        }
    }

    /// The `output.error` of a call refused for its input: `TOOL_RUNTIME_BAD_INPUT_VALUE`,
    /// status 400, not retryable as is, with the parameter in `extra.parameter`.
    pub fn tool_call_error(&self, tool: &str) -> ToolCallError {
        ToolCallError {
            message: format!("Invalid input for tool '{tool}': {self}"),
            kind: Some(error_kind::TOOL_RUNTIME_BAD_INPUT_VALUE.into()),
            status_code: Some(400),
            extra: Some(serde_json::json!({ "parameter": self.parameter() })),
            ..ToolCallError::default()
        }
    }
}

/// Checks `input` against `parameters` (the rules are in the module doc).
pub fn validate_input(
    parameters: &[InputParameter],
    input: &Map<String, Value>,
) -> Result<(), InputError> {
    if let Some(name) = input
        .keys()
        .find(|name| !parameters.iter().any(|p| &p.name == *name))
    {
        let known: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
        let known = if known.is_empty() {
            "no parameters".to_string()
        } else {
            known.join(", ")
        };
        return Err(InputError::Unknown {
            name: name.clone(),
            known,
        });
    }
    for p in parameters {
        match input.get(&p.name) {
            None | Some(Value::Null) if p.required => {
                return Err(InputError::Missing(p.name.clone()));
            }
            None | Some(Value::Null) => {}
            Some(value) => check_value(&p.name, &p.value_schema, value)?,
        }
    }
    Ok(())
}

fn check_value(name: &str, schema: &ValueSchema, value: &Value) -> Result<(), InputError> {
    check_type(name, &schema.val_type, value)?;
    let allowed = schema.enum_values.as_deref().filter(|e| !e.is_empty());
    match value {
        Value::String(s) => check_enum(name, allowed, s),
        Value::Array(items) => {
            let inner = schema.inner_val_type.as_deref();
            if inner.is_none() && allowed.is_none() {
                return Ok(());
            }
            for (i, item) in items.iter().enumerate() {
                // The item's name is only built for the error, not on the success path.
                let item_name = || format!("{name}[{i}]");
                if let Some(inner) = inner {
                    check_type(name, inner, item).map_err(|e| rename(e, item_name()))?;
                }
                if let Value::String(s) = item {
                    check_enum(name, allowed, s).map_err(|e| rename(e, item_name()))?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_type(name: &str, val_type: &str, value: &Value) -> Result<(), InputError> {
    let (fits, expected) = match val_type {
        "string" => (value.is_string(), "a string"),
        "integer" => (value.is_i64() || value.is_u64(), "an integer"),
        "number" => (value.is_number(), "a number"),
        "boolean" => (value.is_boolean(), "a boolean"),
        "array" => (value.is_array(), "an array"),
        _ => (true, ""),
    };
    if fits {
        return Ok(());
    }
    Err(InputError::WrongType {
        name: name.to_string(),
        expected,
        got: json_kind(value),
    })
}

fn check_enum(name: &str, allowed: Option<&[String]>, value: &str) -> Result<(), InputError> {
    match allowed {
        Some(allowed) if !allowed.iter().any(|a| a == value) => Err(InputError::NotInEnum {
            name: name.to_string(),
            allowed: allowed.join(", "),
            got: format!("{value:?}"),
        }),
        _ => Ok(()),
    }
}

/// The same error, about an array's item rather than the whole parameter.
fn rename(mut e: InputError, item: String) -> InputError {
    match &mut e {
        InputError::Missing(n) => *n = item,
        InputError::WrongType { name, .. }
        | InputError::NotInEnum { name, .. }
        | InputError::Unknown { name, .. } => *name = item,
    }
    e
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "array", "json"];

    fn param(name: &str, val_type: &str, required: bool) -> InputParameter {
        InputParameter {
            name: name.into(),
            required,
            description: None,
            value_schema: ValueSchema {
                val_type: val_type.into(),
                ..Default::default()
            },
            inferrable: true,
        }
    }

    fn array_of(name: &str, inner: &str) -> InputParameter {
        let mut p = param(name, "array", true);
        p.value_schema.inner_val_type = Some(inner.into());
        p
    }

    fn with_enum(mut p: InputParameter, values: &[&str]) -> InputParameter {
        p.value_schema.enum_values = Some(values.iter().map(|v| v.to_string()).collect());
        p
    }

    fn check(params: &[InputParameter], input: Value) -> Result<(), InputError> {
        validate_input(params, input.as_object().unwrap())
    }

    /// One value of each JSON kind, with the kinds it counts as.
    fn samples() -> Vec<(Value, &'static [&'static str])> {
        vec![
            (json!("x"), &["string"]),
            (json!(3), &["integer", "number"]),
            (json!(2.5), &["number"]),
            (json!(true), &["boolean"]),
            (json!([1]), &["array"]),
            (json!({"k": 1}), &[]),
        ]
    }

    #[test]
    fn a_required_parameter_that_is_absent_is_missing_for_every_type() {
        for t in TYPES {
            let err = check(&[param("p", t, true)], json!({})).unwrap_err();
            assert_eq!(err, InputError::Missing("p".into()), "{t}");
            assert_eq!(err.to_string(), "missing required parameter 'p'");
        }
    }

    /// The TDK let a required `json` parameter through when absent or null; the gateway
    /// refused it. Both refuse it now.
    #[test]
    fn a_required_json_parameter_that_is_absent_or_null_is_missing() {
        let params = [param("payload", "json", true)];
        for input in [json!({}), json!({"payload": null})] {
            assert_eq!(
                check(&params, input),
                Err(InputError::Missing("payload".into()))
            );
        }
        assert!(check(&params, json!({"payload": {"any": ["shape"]}})).is_ok());
    }

    #[test]
    fn null_is_missing_when_required_and_absent_when_optional() {
        for t in TYPES {
            let required = check(&[param("p", t, true)], json!({"p": null}));
            assert_eq!(required, Err(InputError::Missing("p".into())), "{t}");
            assert!(
                check(&[param("p", t, false)], json!({"p": null})).is_ok(),
                "{t}"
            );
            assert!(check(&[param("p", t, false)], json!({})).is_ok(), "{t}");
        }
    }

    #[test]
    fn each_type_accepts_its_own_kind_and_refuses_the_others() {
        for t in ["string", "integer", "number", "boolean", "array"] {
            for (value, kinds) in samples() {
                let result = check(&[param("p", t, true)], json!({ "p": value }));
                if kinds.contains(&t) {
                    assert!(result.is_ok(), "{t} {value}");
                } else {
                    let err = result.unwrap_err();
                    assert!(matches!(err, InputError::WrongType { .. }), "{t} {value}");
                    assert_eq!(err.parameter(), "p");
                }
            }
        }
    }

    #[test]
    fn a_wrong_type_names_the_parameter_and_both_types() {
        let err = check(&[param("a", "number", true)], json!({"a": "x"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'a' must be a number, got a string"
        );
        let err = check(&[param("n", "integer", true)], json!({"n": 1.5})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'n' must be an integer, got a number"
        );
        let err = check(&[param("f", "boolean", true)], json!({"f": {}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'f' must be a boolean, got an object"
        );
    }

    #[test]
    fn json_and_unknown_types_accept_any_value() {
        for t in ["json", "", "object"] {
            for (value, _) in samples() {
                assert!(check(&[param("p", t, true)], json!({ "p": value })).is_ok());
            }
        }
    }

    #[test]
    fn an_enum_limits_a_string_and_names_the_allowed_values() {
        let p = with_enum(param("style", "string", false), &["formal", "casual"]);
        let params = [p];
        assert!(check(&params, json!({"style": "formal"})).is_ok());
        let err = check(&params, json!({"style": "rude"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"parameter 'style' must be one of [formal, casual], got "rude""#
        );
    }

    /// The TDK refused every string for `enum: []`; the gateway ignored it. An empty enum
    /// can be satisfied by nothing, so it is read as no enum.
    #[test]
    fn an_empty_enum_limits_nothing() {
        let params = [with_enum(param("style", "string", true), &[])];
        assert!(check(&params, json!({"style": "anything"})).is_ok());
    }

    #[test]
    fn array_items_are_checked_against_each_inner_type() {
        for inner in ["string", "integer", "number", "boolean", "json"] {
            for (value, kinds) in samples() {
                let params = [array_of("xs", inner)];
                let result = check(&params, json!({ "xs": [value.clone(), value.clone()] }));
                if inner == "json" || kinds.contains(&inner) {
                    assert!(result.is_ok(), "{inner} {value}");
                } else {
                    let err = result.unwrap_err();
                    assert!(
                        matches!(err, InputError::WrongType { .. }),
                        "{inner} {value}"
                    );
                    assert_eq!(err.parameter(), "xs[0]", "{inner} {value}");
                }
            }
        }
        let err = check(&[array_of("ids", "integer")], json!({"ids": [1, "2"]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'ids[1]' must be an integer, got a string"
        );
        let err = check(&[array_of("ids", "integer")], json!({"ids": [null]})).unwrap_err();
        assert_eq!(err.parameter(), "ids[0]");
    }

    #[test]
    fn an_array_without_an_inner_type_takes_any_items() {
        let params = [param("xs", "array", true)];
        assert!(check(&params, json!({"xs": [1, "a", null, {}]})).is_ok());
        assert!(check(&params, json!({"xs": []})).is_ok());
    }

    #[test]
    fn an_enum_on_an_array_limits_each_string_item() {
        let params = [with_enum(array_of("tags", "string"), &["a", "b"])];
        assert!(check(&params, json!({"tags": ["a", "b", "a"]})).is_ok());
        let err = check(&params, json!({"tags": ["a", "c"]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"parameter 'tags[1]' must be one of [a, b], got "c""#
        );
    }

    #[test]
    fn an_unknown_parameter_is_refused_naming_the_known_ones() {
        let params = [param("a", "string", false), param("b", "string", false)];
        let err = check(&params, json!({"a": "x", "c": 1})).unwrap_err();
        assert_eq!(err.to_string(), "unknown parameter 'c' (expected: a, b)");
        let err = check(&[], json!({"c": 1})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown parameter 'c' (expected: no parameters)"
        );
        assert!(check(&[], json!({})).is_ok());
    }

    /// A misspelt name is reported as such, not as the required one it was meant to be.
    #[test]
    fn an_unknown_parameter_is_reported_before_a_missing_one() {
        let err = check(&[param("name", "string", true)], json!({"nmae": "Ada"})).unwrap_err();
        assert_eq!(err.parameter(), "nmae");
    }

    #[test]
    fn parameter_names_are_case_sensitive() {
        let err = check(&[param("name", "string", false)], json!({"Name": "Ada"})).unwrap_err();
        assert!(matches!(err, InputError::Unknown { .. }));
    }

    #[test]
    fn the_first_failing_parameter_in_declared_order_is_reported() {
        let params = [param("b", "string", true), param("a", "string", true)];
        let err = check(&params, json!({"a": 1})).unwrap_err();
        assert_eq!(err.parameter(), "b");
    }

    #[test]
    fn a_refusal_becomes_a_bad_input_error_naming_tool_and_parameter() {
        let err = check(&[param("a", "number", true)], json!({})).unwrap_err();
        let wire = err.tool_call_error("Kit.Add");
        assert_eq!(
            wire.message,
            "Invalid input for tool 'Kit.Add': missing required parameter 'a'"
        );
        assert_eq!(wire.kind.as_deref(), Some("TOOL_RUNTIME_BAD_INPUT_VALUE"));
        assert_eq!(wire.status_code, Some(400));
        assert!(!wire.can_retry);
        assert_eq!(wire.extra, Some(json!({"parameter": "a"})));
    }
}
