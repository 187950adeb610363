// Package canvases is Huabu's canvas language: it parses canvas YAML into a
// node tree, checks it against the language spec and the configured profile
// schema, and compiles it into a Plan, the immutable, content-hashed form the
// engine runs.
//
// The pipeline is:
//
//	Parse      yaml.Node tree → Value tree, checked against Spec (fields, types, formats)
//	build      Value tree → draft Plan, with a position for every path
//	check      references, reachability, loops, branches, splits, channels,
//	           expressions (expr-lang, typed by Schema) and message templates
//	Compile    resolve defaults, hash → Plan
//
// Every problem is reported, not only the first, as FILE:LINE:COL: severity:
// path: message. The same Spec generates the JSON Schema (huabu schema) and the
// language reference (docs/canvas.md), so the three never drift apart.
//
// The package imports nothing from Temporal or the providers: it is pure data,
// so the validator, the editor schema and the engine share one definition.
package canvases
