// Package config reads huabu.yaml: where Temporal and the store are, the HTTP
// listener, the typed profile schema (attributes, computed traits, RFM),
// auto-tag rules, channel providers and the sending policy.
//
// ${ENV_VAR} (or ${ENV_VAR:-default}) is expanded in every string value after
// parsing, so secrets never need to be written into the file and a value can
// hold any character without breaking the YAML. Relative paths are resolved
// against the directory of the config file.
package config
