// Package auth says who may do what on the admin API: named bearer tokens
// (auth.tokens in huabu.yaml), each with a role, and the permissions each
// role grants. It also carries the Actor of a request — the token's name,
// role and remote address — to whatever records what was done (the audit
// log). It knows nothing of routes: server maps each route to a Permission.
package auth
