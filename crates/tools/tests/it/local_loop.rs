//! The local Azure-shaped loop, checked offline (no Docker engine here): `compose.yaml` has a
//! pinned, health-checked stand-in for every Azure service, the Event Hubs emulator declares
//! the hubs and consumer groups the app settings name, and `local.settings.json.example`,
//! `function.json`, the README and the Bicep agree on every name.

use std::collections::{BTreeMap, BTreeSet};

use sinks::azure_sql::settings::SqlSettings;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::repo_path;
use crate::infra::{function_json_settings, readme_settings};

fn compose() -> Yaml {
    let text = std::fs::read_to_string(repo_path("compose.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn services(doc: &Yaml) -> BTreeMap<String, Yaml> {
    doc["services"]
        .as_hash()
        .expect("compose.yaml has services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn local_settings() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_path("local.settings.json.example")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["Values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_string()))
        .collect()
}

fn emulator_config() -> Value {
    let text = std::fs::read_to_string(repo_path("local/eventhubs-emulator.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn compose_has_a_pinned_health_checked_stand_in_for_every_azure_service() {
    let doc = compose();
    let services = services(&doc);
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    for needed in [
        "azurite",
        "eventhubs",
        "eventhubs-ready",
        "sqlserver",
        "sqlserver-init",
    ] {
        assert!(names.contains(needed), "compose.yaml lacks {needed}");
    }
    for (name, service) in &services {
        let image = service["image"]
            .as_str()
            .expect("every service names its image");
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{name}: image {image} must have a pinned tag"
        );
        for port in strings(&service["ports"]) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name}: port {port} must bind to localhost only"
            );
        }
    }
    // Long-running services are health-checked; the emulator image has no shell, so its
    // health endpoint is probed from a sidecar.
    for name in ["azurite", "eventhubs-ready", "sqlserver"] {
        let test = strings(&services[name]["healthcheck"]["test"]);
        assert!(test.len() >= 2, "{name} has no healthcheck test");
    }
    let probe = strings(&services["eventhubs-ready"]["healthcheck"]["test"]).join(" ");
    assert!(
        probe.contains("http://eventhubs:5300/health"),
        "the sidecar must probe the emulator's health endpoint: {probe}"
    );
    let ports = |name: &str| -> Vec<String> {
        strings(&services[name]["ports"])
            .iter()
            .map(|p| p.rsplit(':').next().unwrap().to_string())
            .collect()
    };
    assert!(ports("azurite").contains(&"10000".to_string()));
    assert!(ports("azurite").contains(&"10002".to_string()));
    assert!(ports("eventhubs").contains(&"5672".to_string()));
    assert!(ports("sqlserver").contains(&"1433".to_string()));
    // The emulator keeps its blobs and metadata in Azurite and starts once Azurite is healthy.
    let eh = &services["eventhubs"];
    assert_eq!(eh["environment"]["BLOB_SERVER"].as_str(), Some("azurite"));
    assert_eq!(
        eh["environment"]["METADATA_SERVER"].as_str(),
        Some("azurite")
    );
    assert_eq!(
        eh["depends_on"]["azurite"]["condition"].as_str(),
        Some("service_healthy")
    );
    let mount = strings(&eh["volumes"]);
    assert_eq!(
        mount,
        ["./local/eventhubs-emulator.json:/Eventhubs_Emulator/ConfigFiles/Config.json:ro"]
    );
    assert!(repo_path("local/eventhubs-emulator.json").is_file());
}

#[test]
fn the_emulator_declares_the_hubs_and_consumer_groups_the_settings_name() {
    let config = emulator_config();
    let namespaces = config["UserConfig"]["NamespaceConfig"].as_array().unwrap();
    assert_eq!(namespaces.len(), 1, "the emulator supports one namespace");
    assert_eq!(namespaces[0]["Name"], "emulatorNs1");
    assert_eq!(namespaces[0]["Type"], "EventHub");
    let entities = namespaces[0]["Entities"].as_array().unwrap();
    assert!((1..=10).contains(&entities.len()), "1 to 10 hubs");
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in entities {
        let partitions = e["PartitionCount"].as_u64().expect("an integer");
        assert!((1..=32).contains(&partitions), "{e}");
        let cgs: BTreeSet<String> = e["ConsumerGroups"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|g| g["Name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert!(cgs.len() <= 20);
        assert!(
            !cgs.iter().any(|g| g.eq_ignore_ascii_case("$default")),
            "$Default always exists and cannot be declared"
        );
        groups.insert(e["Name"].as_str().unwrap().to_string(), cgs);
    }
    let settings = local_settings();
    // Every hub function.json names, by its setting.
    let hub_settings: Vec<String> = function_json_settings()
        .into_iter()
        .filter(|name| name.ends_with("HubName"))
        .collect();
    assert_eq!(hub_settings.len(), 4, "{hub_settings:?}");
    for hub_setting in &hub_settings {
        let hub_setting = hub_setting.as_str();
        let hub = &settings[hub_setting];
        assert!(
            groups.contains_key(hub),
            "{hub_setting}={hub} is not an emulator hub"
        );
    }
    let group = &settings["WindowsConsumerGroup"];
    assert!(
        group == "$Default" || groups[&settings["WindowsHubName"]].contains(group),
        "WindowsConsumerGroup={group} is not declared on the windows hub"
    );
    // The same hubs as in Azure (infra/main.bicep), plus the raw telemetry hub the simulator feeds.
    let bicep = std::fs::read_to_string(repo_path("infra/main.bicep")).unwrap();
    for hub in groups.keys() {
        assert!(
            bicep.contains(&format!(": '{hub}'")),
            "hub {hub} is not in infra/main.bicep's hubs"
        );
    }
    let function_app = std::fs::read_to_string(repo_path("infra/modules/eventhubs.bicep")).unwrap();
    assert!(function_app.contains(&format!("name: '{group}'")));
}

#[test]
fn local_settings_name_what_function_json_the_handler_and_compose_use() {
    let settings = local_settings();
    let names: BTreeSet<String> = settings.keys().cloned().collect();
    // Everything function.json reads; the connection is a connection string locally (the
    // emulator has no Entra ID) instead of `EventHubConnection__fullyQualifiedNamespace`.
    for name in function_json_settings() {
        let name = name.trim_end_matches("__fullyQualifiedNamespace");
        assert!(names.contains(name), "local settings lack {name}");
    }
    let connection = &settings["EventHubConnection"];
    assert!(
        connection.starts_with("Endpoint=sb://localhost;")
            && connection.contains("UseDevelopmentEmulator=true"),
        "{connection}"
    );
    assert_eq!(
        settings["AzureWebJobsStorage"],
        "UseDevelopmentStorage=true"
    );
    assert_eq!(settings["FUNCTIONS_WORKER_RUNTIME"], "custom");
    // The handler's own settings are the documented ones, and they validate.
    let table = readme_settings();
    for name in names
        .iter()
        .filter(|n| n.starts_with("ANOMALY_") || *n == "RUST_LOG")
    {
        assert!(table.contains(name), "{name} is not in the README's table");
    }
    service::configuration::Settings::from_lookup(|k| settings.get(k).cloned())
        .expect("the example's settings validate");
    // SQL authentication to the compose SQL Server, with its default password and database.
    let sql = SqlSettings::from_lookup(|k| settings.get(k).cloned())
        .unwrap()
        .expect("ANOMALY_SQL_CONNECTION_STRING is set");
    assert_eq!((sql.host.as_str(), sql.port), ("localhost", 1433));
    assert_eq!(sql.database, "anomalies");
    let compose_text = std::fs::read_to_string(repo_path("compose.yaml")).unwrap();
    assert!(compose_text.contains("CREATE DATABASE anomalies"));
    let password = settings["ANOMALY_SQL_CONNECTION_STRING"]
        .split(';')
        .find_map(|kv| kv.strip_prefix("Password="))
        .unwrap();
    assert!(compose_text.contains(&format!("MSSQL_SA_PASSWORD:-{password}}}")));
}

#[test]
fn the_host_uses_a_bundle_whose_event_hubs_extension_talks_to_the_emulator() {
    // Bundles before 4.28.0 carry Event Hubs extension 5.x, which cannot reach the emulator.
    let host: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path("host.json")).unwrap()).unwrap();
    let range = host["extensionBundle"]["version"].as_str().unwrap();
    let lower = range.trim_start_matches('[').split(',').next().unwrap();
    let parts: Vec<u32> = lower.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts >= vec![4, 28, 0], "{range}");
}

#[test]
fn the_readme_walks_through_the_local_loop() {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let start = readme
        .find("### Run under the Functions host locally")
        .expect("README section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
    for step in [
        "docker compose up -d --wait",
        "sensor-anomaly db migrate",
        "scripts/package.sh --dir",
        "func start --script-root",
        "simulate --event-hub windows --windows",
        "alerts --event-hub alerts",
    ] {
        assert!(section.contains(step), "the local loop lacks `{step}`");
    }
}
