//! Checks a call's input against the tool's declared parameters before any worker is
//! called, so a model gets a precise message naming the parameter it got wrong.

use serde_json::{Map, Value};
use switchboard_wire::{InputParameter, ValueSchema};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("missing required parameter '{0}'")]
    Missing(String),
    #[error("parameter '{name}' must be {expected}, got {got}")]
    WrongType {
        name: String,
        expected: String,
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
    pub fn parameter(&self) -> &str {
        match self {
            InputError::Missing(n) => n,
            InputError::WrongType { name, .. }
            | InputError::NotInEnum { name, .. }
            | InputError::Unknown { name, .. } => name,
        }
    }
}

/// Validates `input` against `parameters`. A `null` for an optional parameter counts as
/// absent.
pub fn validate_input(
    parameters: &[InputParameter],
    input: &Map<String, Value>,
) -> Result<(), InputError> {
    for (name, _) in input.iter() {
        if !parameters.iter().any(|p| &p.name == name) {
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
    let ok = match schema.val_type.as_str() {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        _ => true,
    };
    if !ok {
        return Err(InputError::WrongType {
            name: name.to_string(),
            expected: describe(&schema.val_type),
            got: json_kind(value),
        });
    }
    if let (Some(allowed), Some(s)) = (
        schema.enum_values.as_ref().filter(|e| !e.is_empty()),
        value.as_str(),
    ) && !allowed.iter().any(|a| a == s)
    {
        return Err(InputError::NotInEnum {
            name: name.to_string(),
            allowed: allowed.join(", "),
            got: format!("{s:?}"),
        });
    }
    if let (Value::Array(items), Some(inner)) = (value, schema.inner_val_type.as_deref()) {
        let inner_schema = ValueSchema {
            val_type: inner.to_string(),
            ..Default::default()
        };
        for (i, item) in items.iter().enumerate() {
            check_value(&format!("{name}[{i}]"), &inner_schema, item)?;
        }
    }
    Ok(())
}

fn describe(val_type: &str) -> String {
    match val_type {
        "integer" => "an integer".into(),
        "array" => "an array".into(),
        "json" => "a JSON value".into(),
        other => format!("a {other}"),
    }
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

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn missing_required_parameter_is_named() {
        let err = validate_input(&[param("a", "number", true)], &obj(json!({}))).unwrap_err();
        assert_eq!(err.to_string(), "missing required parameter 'a'");
    }

    #[test]
    fn wrong_type_names_parameter_and_types() {
        let err =
            validate_input(&[param("a", "number", true)], &obj(json!({"a": "x"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'a' must be a number, got a string"
        );
        let err =
            validate_input(&[param("n", "integer", true)], &obj(json!({"n": 1.5}))).unwrap_err();
        assert_eq!(err.parameter(), "n");
    }

    #[test]
    fn enum_and_array_items_are_checked() {
        let mut p = param("style", "string", false);
        p.value_schema.enum_values = Some(vec!["formal".into(), "casual".into()]);
        assert!(matches!(
            validate_input(std::slice::from_ref(&p), &obj(json!({"style": "rude"}))),
            Err(InputError::NotInEnum { .. })
        ));
        let mut arr = param("ids", "array", true);
        arr.value_schema.inner_val_type = Some("integer".into());
        let err = validate_input(&[arr], &obj(json!({"ids": [1, "2"]}))).unwrap_err();
        assert_eq!(err.parameter(), "ids[1]");
    }

    #[test]
    fn unknown_parameter_and_null_optional() {
        let params = [param("a", "string", false)];
        assert!(validate_input(&params, &obj(json!({"a": null}))).is_ok());
        let err = validate_input(&params, &obj(json!({"b": 1}))).unwrap_err();
        assert_eq!(err.to_string(), "unknown parameter 'b' (expected: a)");
    }
}
