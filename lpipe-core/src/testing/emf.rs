//! A checker of CloudWatch Embedded Metric Format documents, after EMF's specification.

use serde_json::Value;

/// The units EMF accepts.
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks a document against the structure EMF's specification gives: the `_aws` metadata
/// (an integer `Timestamp`, `CloudWatchMetrics` directives with a `Namespace`, dimension sets
/// of at most 30 keys whose values are strings, at most 100 metric definitions with valid
/// units), and each metric's value at the root (a number, or an array of at most 100).
///
/// # Errors
///
/// What is wrong, naming the member.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// let doc = json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N",
///     "Dimensions": [["service"]], "Metrics": [{"Name": "Hits", "Unit": "Count"}]}]},
///     "service": "s", "Hits": 2});
/// assert!(lpipe_core::testing::check_emf(&doc).is_ok());
/// let bad = json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N",
///     "Dimensions": [["service"]], "Metrics": [{"Name": "Hits", "Unit": "Count"}]}]}, "Hits": 2});
/// assert!(lpipe_core::testing::check_emf(&bad).unwrap_err().contains("service"));
/// ```
pub fn check_emf(doc: &Value) -> Result<(), String> {
    let root = doc.as_object().ok_or("the document is not a JSON object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    if !aws.get("Timestamp").is_some_and(Value::is_u64) {
        return Err("_aws.Timestamp is not a non-negative integer".into());
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("_aws.CloudWatchMetrics is not a non-empty array")?;
    for (i, directive) in directives.iter().enumerate() {
        let at = format!("_aws.CloudWatchMetrics[{i}]");
        let namespace = directive["Namespace"]
            .as_str()
            .ok_or(format!("{at}.Namespace is not a string"))?;
        if namespace.is_empty() || namespace.chars().count() > 255 {
            return Err(format!("{at}.Namespace must have 1 to 255 characters"));
        }
        let sets = directive["Dimensions"]
            .as_array()
            .ok_or(format!("{at}.Dimensions is not an array"))?;
        for (j, set) in sets.iter().enumerate() {
            let keys = set
                .as_array()
                .ok_or(format!("{at}.Dimensions[{j}] is not an array"))?;
            if keys.len() > 30 {
                return Err(format!(
                    "{at}.Dimensions[{j}] has {} dimensions, over 30",
                    keys.len()
                ));
            }
            for key in keys {
                let key = key
                    .as_str()
                    .ok_or(format!("{at}.Dimensions[{j}] holds a non-string"))?;
                if !root.get(key).is_some_and(Value::is_string) {
                    return Err(format!("dimension '{key}' has no string value at the root"));
                }
            }
        }
        let metrics = directive["Metrics"]
            .as_array()
            .ok_or(format!("{at}.Metrics is not an array"))?;
        if metrics.len() > 100 {
            return Err(format!(
                "{at}.Metrics has {} metrics, over 100",
                metrics.len()
            ));
        }
        for (k, metric) in metrics.iter().enumerate() {
            check_metric(root, &format!("{at}.Metrics[{k}]"), metric)?;
        }
    }
    Ok(())
}

/// One metric definition of a directive, and its value(s) at the document's root.
fn check_metric(
    root: &serde_json::Map<String, Value>,
    at: &str,
    metric: &Value,
) -> Result<(), String> {
    let name = metric["Name"]
        .as_str()
        .ok_or(format!("{at}.Name is not a string"))?;
    if name.is_empty() || name.chars().count() > 255 {
        return Err(format!("{at}.Name must have 1 to 255 characters"));
    }
    let known = ["Name", "Unit", "StorageResolution"];
    let members = metric.as_object().into_iter().flat_map(|m| m.keys());
    if let Some(key) = members.into_iter().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("metric '{name}' has an unknown member '{key}'"));
    }
    if let Some(unit) = metric.get("Unit") {
        if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
            return Err(format!("metric '{name}' has an invalid unit {unit}"));
        }
    }
    match root.get(name) {
        Some(Value::Number(_)) => Ok(()),
        Some(Value::Array(values)) if values.is_empty() || values.len() > 100 => Err(format!(
            "metric '{name}' has {} values (1 to 100)",
            values.len()
        )),
        Some(Value::Array(values)) if !values.iter().all(Value::is_number) => {
            Err(format!("metric '{name}' has a value that is not a number"))
        }
        Some(Value::Array(_)) => Ok(()),
        _ => Err(format!("metric '{name}' has no numeric value at the root")),
    }
}
