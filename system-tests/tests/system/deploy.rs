//! The deployment files agree with the code (`deploy/check.sh` validates their syntax):
//! - every variable `docker-compose.yml` and the Kubernetes manifests give a service is
//!   one the services read, and what they give is enough for a production start;
//! - every image is pinned to a version;
//! - every metric the Grafana dashboard and the Prometheus alert rules query is one the
//!   running services export.
//!
//! Here rather than in a crate of its own because it starts all three services.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;
use serde_norway::Value;
use service_kit::environment;
use service_kit::{Service, settings};
use system_tests::{Pipeline, recent_movements};
use test_kit::get_text;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Every YAML document of a file, merge keys (`<<`) applied.
fn documents(path: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(&read(path))
        .map(|document| {
            let mut value =
                Value::deserialize(document).unwrap_or_else(|error| panic!("{path}: {error}"));
            merge(&mut value);
            value
        })
        .collect()
}

/// Applies YAML merge keys (`<<: *anchor`) at every depth, merges within merges first.
fn merge(value: &mut Value) {
    match value {
        Value::Mapping(mapping) => {
            if let Some(mut merged) = mapping.remove("<<") {
                merge(&mut merged);
                let sources = match merged {
                    Value::Sequence(sources) => sources,
                    single => vec![single],
                };
                for source in sources {
                    for (key, entry) in source.as_mapping().unwrap() {
                        if !mapping.contains_key(key) {
                            mapping.insert(key.clone(), entry.clone());
                        }
                    }
                }
            }
            for (_, entry) in mapping.iter_mut() {
                merge(entry);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(merge),
        _ => {}
    }
}

/// `${NAME:?message}`, `${NAME:-default}` and `${NAME}` resolved the way a user's `.env`
/// would: the default where there is one, else a value of the right shape.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let inner = &rest[start + 2..end];
        let value = match inner.split_once(":-") {
            Some((_, default)) => default.to_owned(),
            None => {
                let name = inner.split(":?").next().unwrap();
                match name {
                    "JWT_SECRET" => "a-secret-of-48-random-bytes-as-a-user-would-set-it".to_owned(),
                    _ => format!("set-{}", name.to_lowercase().replace('_', "-")),
                }
            }
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn as_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|mapping| {
            mapping
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        Value::String(text) => text.clone(),
                        Value::Number(number) => number.to_string(),
                        Value::Bool(flag) => flag.to_string(),
                        Value::Null => String::new(),
                        other => panic!("not a scalar: {other:?}"),
                    };
                    (key.as_str().unwrap().to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The variables are all read by a service (a Kubernetes ConfigMap and Secret serve all
/// three), and start `service` in production.
fn starts_in_production(service: Service, variables: &BTreeMap<String, String>, source: &str) {
    for name in variables.keys() {
        assert!(
            environment::is_known(name),
            "{source} sets {name}, which no service reads"
        );
    }
    assert_eq!(
        variables.get("BAZAAR_ENV").map(String::as_str),
        Some("production"),
        "{source}: BAZAAR_ENV"
    );
    if let Err(error) = settings::validate(service, |name| variables.get(name).cloned()) {
        panic!(
            "{source}: {} would not start in production: {error}",
            service.name()
        );
    }
}

fn pinned(image: &str) -> bool {
    let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
    tag != "latest"
        && tag
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_digit() || first == 'v')
}

#[test]
fn compose_gives_the_services_what_they_read_and_pins_its_images() {
    let compose = documents("docker-compose.yml").remove(0);
    let services = compose["services"].as_mapping().unwrap();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let image = interpolate(service["image"].as_str().unwrap());
        assert!(
            pinned(&image),
            "{name}: image {image} is not pinned to a version"
        );
        let environment = || -> BTreeMap<String, String> {
            as_map(&service["environment"])
                .into_iter()
                .map(|(key, value)| (key, interpolate(&value)))
                .collect()
        };
        let service = match name {
            "ingest" => Service::Ingest,
            "processors" => Service::Processors,
            "query-api" => Service::QueryApi,
            "topics" => {
                for key in environment().keys() {
                    assert!(environment::is_known(key), "topics sets {key}");
                }
                continue;
            }
            _ => continue,
        };
        starts_in_production(
            service,
            &environment(),
            &format!("docker-compose.yml {name}"),
        );
    }
    for service in [
        "ingest",
        "processors",
        "query-api",
        "topics",
        "kafka-1",
        "postgres",
        "postgres-standby",
        "redis",
        "schema-registry",
        "prometheus",
        "grafana",
    ] {
        assert!(
            services.contains_key(service),
            "docker-compose.yml has no {service}"
        );
    }
    assert!(
        as_map(&services["query-api"]["environment"]).contains_key("DATABASE_READ_URL"),
        "query-api reads the standby"
    );
    let dockerfile = read("deploy/Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|line| line.starts_with("ARG ") && line.contains("_VERSION="))
    {
        let version = line.split('=').nth(1).unwrap();
        assert!(
            version.chars().next().unwrap().is_ascii_digit(),
            "deploy/Dockerfile: {line}"
        );
    }
}

#[test]
fn the_manifests_give_the_services_what_they_read() {
    let mut config = BTreeMap::new();
    let mut containers = Vec::new();
    for file in [
        "config.yaml",
        "ingest.yaml",
        "processors.yaml",
        "query-api.yaml",
        "jobs.yaml",
    ] {
        for document in documents(&format!("deploy/k8s/base/{file}")) {
            match document["kind"].as_str() {
                Some("ConfigMap") => config.extend(as_map(&document["data"])),
                Some("Deployment" | "StatefulSet" | "Job") => {
                    for container in document["spec"]["template"]["spec"]["containers"]
                        .as_sequence()
                        .unwrap()
                    {
                        containers.push(container.clone());
                    }
                }
                _ => {}
            }
        }
    }
    // secrets.env as a user writes it from the example.
    let mut secrets: BTreeMap<String, String> =
        read("deploy/k8s/overlays/production/secrets.env.example")
            .lines()
            .filter(|line| !line.starts_with('#') && line.contains('='))
            .map(|line| {
                let (key, value) = line.split_once('=').unwrap();
                (key.to_owned(), value.to_owned())
            })
            .collect();
    secrets.insert(
        "JWT_SECRET".into(),
        "a-secret-of-48-random-bytes-as-a-user-would-set-it".into(),
    );
    let mut seen = BTreeSet::new();
    for container in &containers {
        let args: Vec<&str> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|arg| arg.as_str().unwrap())
            .collect();
        let mut variables = config.clone();
        let from_secret = container["envFrom"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|source| source.get("secretRef").is_some());
        if from_secret {
            variables.extend(secrets.clone());
        }
        for variable in container["env"].as_sequence().into_iter().flatten() {
            let name = variable["name"].as_str().unwrap();
            if ["POD_NAME", "POD_NAMESPACE"].contains(&name) {
                continue;
            }
            let value = variable["value"].as_str().unwrap_or_default();
            variables.insert(name.to_owned(), value.to_owned());
        }
        let service = match args[0] {
            "ingest" => Service::Ingest,
            "processors" => Service::Processors,
            "query-api" => Service::QueryApi,
            "bazaar-topics" => {
                for key in variables.keys() {
                    assert!(environment::is_known(key), "the topics job sets {key}");
                }
                continue;
            }
            other => panic!("a container runs {other}"),
        };
        seen.insert(args.join(" "));
        starts_in_production(
            service,
            &variables,
            &format!("deploy/k8s container {}", args.join(" ")),
        );
    }
    assert_eq!(
        seen,
        BTreeSet::from([
            "ingest".to_owned(),
            "ingest migrate".to_owned(),
            "processors".to_owned(),
            "query-api".to_owned()
        ])
    );
    let overlay = documents("deploy/k8s/overlays/production/kustomization.yaml").remove(0);
    let tag = overlay["images"][0]["newTag"].as_str().unwrap();
    assert!(
        pinned(&format!("bazaar:{tag}")),
        "the production overlay's image tag {tag}"
    );
}

/// The metric names a PromQL expression reads (ours all start with `bazaar_` or `http_`).
fn metrics_in(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expression;
    while let Some(at) = rest.find(|c: char| c.is_ascii_lowercase()) {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + word.len().max(1)..];
        if word.starts_with("bazaar_") || word.starts_with("http_server_") {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(&word);
            names.insert(base.to_owned());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_and_the_alerts_query_metrics_the_services_export() {
    let pipeline = Pipeline::start(false).await;
    let processors = processors::App::build(pipeline.stack.processors_settings())
        .await
        .unwrap();
    let processors_url = format!("http://127.0.0.1:{}", processors.port());
    let _processors = test_kit::background(|stopped| processors.run_until_stopped(stopped));

    // Traffic that moves every series: movements accepted and refused, processed, read.
    let token = pipeline.post(&recent_movements(50, 3)).await;
    let refused = pipeline
        .client
        .post(format!("{}/v1/movements", pipeline.ingest))
        .bearer_auth(pipeline.admin())
        .json(&json!({"movement_id": "0193a0c4-0000-7000-8000-000000000001", "store_id": 1, "product_id": 1, "kind": "sale", "quantity": 0, "occurred_at": "2026-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error());
    let admin = pipeline.admin();
    pipeline
        .read(&format!("/v1/movements?consistency_token={token}"), &admin)
        .await;
    pipeline
        .read(
            &format!("/v1/stores/1/reports/sales?consistency_token={token}"),
            &admin,
        )
        .await;
    pipeline.read("/v1/stores/1/inventory/1", &admin).await;

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/bazaar.json")).unwrap();
    let mut queried = BTreeMap::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expression = target["expr"].as_str().unwrap();
            let names = metrics_in(expression);
            assert!(!names.is_empty(), "panel {}: {expression}", panel["title"]);
            for name in names {
                queried.insert(name, format!("panel {}", panel["title"]));
            }
        }
    }
    let rules = documents("deploy/prometheus/rules/bazaar.yml").remove(0);
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expression = rule["expr"].as_str().unwrap();
            for name in metrics_in(expression) {
                queried.insert(name, format!("alert {}", rule["alert"].as_str().unwrap()));
            }
        }
    }
    // Some series appear with the services' first measurements (every few seconds).
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut exported = BTreeSet::new();
        for base in [&pipeline.ingest, &pipeline.query, &processors_url] {
            let text = get_text(&client, &format!("{base}/metrics")).await;
            exported.extend(
                text.lines()
                    .filter_map(|line| line.strip_prefix("# TYPE "))
                    .map(|line| line.split(' ').next().unwrap().to_owned()),
            );
        }
        let missing: Vec<_> = queried
            .iter()
            .filter(|(name, _)| !exported.contains(*name))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queried but not exported: {missing:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
