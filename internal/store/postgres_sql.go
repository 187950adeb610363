package store

import (
	"strconv"
	"strings"
)

// pgTwins are the PostgreSQL forms of the store's statements that read
// SQLite JSON (json_each over objects, json_extract, json(), ->> on text),
// keyed by the SQLite statement with its whitespace collapsed
// (normalizeSQL). A SQLite statement changed without its twin is refused
// on PostgreSQL with an error that names it, and
// TestEveryStatementHasAPostgresForm fails without a server. Lists of
// scalars need no twin (pgLists). Arguments keep their order; a row list
// is read with json(b)_array_elements, and several updates of one row in
// one statement (which PostgreSQL refuses) are folded first.
var pgTwins = map[string]string{}

func init() {
	// staff.go setTaskTimes: the column is one of three constants.
	for _, column := range []string{"notified_at", "escalated_at", "done_at"} {
		pgTwinList[`UPDATE staff_tasks SET `+column+` = ? WHERE `+column+` = 0 AND (run_id, step_id, cohort, staff, part) IN
		(SELECT value->>'run_id', value->>'step_id', value->>'cohort', value->>'staff', value->>'part' FROM json_each(?))`] = `UPDATE staff_tasks SET ` + column + ` = $1 WHERE ` + column + ` = 0 AND (run_id, step_id, cohort, staff, part) IN
		(SELECT (x.e->>'run_id')::bigint, x.e->>'step_id', (x.e->>'cohort')::bigint, x.e->>'staff', (x.e->>'part')::bigint FROM jsonb_array_elements($2::jsonb) AS x(e))`
	}
	for lite, pg := range pgTwinList {
		pgTwins[normalizeSQL(lite)] = pg
	}
}

var pgTwinList = map[string]string{
	// contacts.go
	`INSERT INTO wecom_contacts (staff, external_userid, state, updated_at)
		SELECT value->>'staff', value->>'external_userid', ?, ? FROM json_each(?) WHERE true
		ON CONFLICT(staff, external_userid) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`: `INSERT INTO wecom_contacts (staff, external_userid, state, updated_at)
		SELECT DISTINCT p.e->>'staff', p.e->>'external_userid', $1, $2 FROM jsonb_array_elements($3::jsonb) AS p(e)
		ON CONFLICT(staff, external_userid) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,

	`SELECT c.staff, c.external_userid, c.state, c.welcome_code, c.welcome_expires, c.welcome_used
		FROM json_each(?) p JOIN wecom_contacts c ON c.staff = p.value->>'staff' AND c.external_userid = p.value->>'external_userid'
		WHERE c.state != ? OR (c.welcome_code != '' AND c.welcome_used = 0 AND c.welcome_expires > ?)`: `SELECT c.staff, c.external_userid, c.state, c.welcome_code, c.welcome_expires, c.welcome_used
		FROM jsonb_array_elements($1::jsonb) AS p(e) JOIN wecom_contacts c ON c.staff = p.e->>'staff' AND c.external_userid = p.e->>'external_userid'
		WHERE c.state != $2 OR (c.welcome_code != '' AND c.welcome_used = 0 AND c.welcome_expires > $3)`,

	`SELECT uid, id, doc FROM profiles WHERE json_extract(doc, '$.wecom_external_userid') = ? ORDER BY uid LIMIT 1`: `SELECT uid, id, doc FROM profiles WHERE (doc->>'wecom_external_userid') = $1 ORDER BY uid LIMIT 1`,

	`SELECT id FROM profiles WHERE json_extract(doc, '$.wecom_external_userid') = ? ORDER BY uid LIMIT 1`: `SELECT id FROM profiles WHERE (doc->>'wecom_external_userid') = $1 ORDER BY uid LIMIT 1`,

	// journey.go
	`SELECT uid, id, doc FROM profiles WHERE json_extract(doc, '$.phone') = ? ORDER BY uid LIMIT 1`: `SELECT uid, id, doc FROM profiles WHERE (doc->>'phone') = $1 ORDER BY uid LIMIT 1`,

	// events.go. New profiles: NOT EXISTS first, so known users do not
	// use up identity values (uids stay close to dense).
	`INSERT OR IGNORE INTO profiles (id, doc, updated_at)
			SELECT value, json_object('id', value), ? FROM json_each(?)`: `INSERT INTO profiles (id, doc, updated_at)
			SELECT u.id, jsonb_build_object('id', u.id), $1 FROM jsonb_array_elements_text($2::jsonb) AS u(id)
			WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = u.id)
			ON CONFLICT DO NOTHING`,

	`INSERT INTO profiles (id, doc, updated_at)
			SELECT value->>'i', json(value->'d'), ? FROM json_each(?) WHERE true
			ON CONFLICT(id) DO UPDATE SET doc = json_patch(profiles.doc, excluded.doc), updated_at = excluded.updated_at`: pgUpsertDocs("profiles", "id"),

	`INSERT INTO anonymous_traits (anonymous_id, doc, updated_at)
			SELECT value->>'i', json(value->'d'), ? FROM json_each(?) WHERE true
			ON CONFLICT(anonymous_id) DO UPDATE SET doc = json_patch(anonymous_traits.doc, excluded.doc), updated_at = excluded.updated_at`: pgUpsertDocs("anonymous_traits", "anonymous_id"),

	`INSERT INTO aliases (anonymous_id, user_id, created_at)
			SELECT value->>'a', value->>'u', ? FROM json_each(?) WHERE true
			ON CONFLICT(anonymous_id) DO NOTHING
			RETURNING anonymous_id`: `INSERT INTO aliases (anonymous_id, user_id, created_at)
			SELECT x.e->>'a', x.e->>'u', $1 FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS x(e, n)
			ON CONFLICT(anonymous_id) DO NOTHING
			RETURNING anonymous_id`,

	`UPDATE profiles SET doc = json_patch(json_remove(t.doc, '$.id'), profiles.doc), updated_at = ?1
				FROM aliases a JOIN anonymous_traits t ON t.anonymous_id = a.anonymous_id
				WHERE a.anonymous_id IN (SELECT value FROM json_each(?2)) AND profiles.id = a.user_id
				RETURNING profiles.uid`: `UPDATE profiles SET doc = json_patch(t.doc - 'id', profiles.doc), updated_at = $1
				FROM aliases a JOIN anonymous_traits t ON t.anonymous_id = a.anonymous_id
				WHERE a.anonymous_id IN (SELECT jsonb_array_elements_text($2::jsonb)) AND profiles.id = a.user_id
				RETURNING profiles.uid`,

	// ledger.go: json keeps the message's text as it was written.
	`INSERT INTO outbox (canvas_id, run_id, step_id, channel, user_id, address, sender, message, created_at)
		SELECT value->>'c', value->>'r', value->>'s', value->>'ch', value->>'u', value->>'a', value->>'se', json(value->'m'), value->>'t' FROM json_each(?)`: `INSERT INTO outbox (canvas_id, run_id, step_id, channel, user_id, address, sender, message, created_at)
		SELECT x.e->>'c', (x.e->>'r')::bigint, x.e->>'s', x.e->>'ch', x.e->>'u', x.e->>'a', x.e->>'se', (x.e->'m')::text, (x.e->>'t')::bigint
		FROM json_array_elements($1::json) WITH ORDINALITY AS x(e, n) ORDER BY x.n`,

	// profiles.go (UpsertProfiles shares the identify upsert above)
	`INSERT OR IGNORE INTO trait_dirty (uid)
			SELECT uid FROM profiles WHERE id IN (SELECT value->>'i' FROM json_each(?))`: `INSERT INTO trait_dirty (uid)
			SELECT uid FROM profiles WHERE id IN (SELECT x.e->>'i' FROM jsonb_array_elements($1::jsonb) AS x(e))
			ON CONFLICT DO NOTHING`,

	`UPDATE profiles SET id = json_extract(n.value, '$.i')
		FROM json_each(?) n
		WHERE profiles.id = json_extract(n.value, '$.d.wecom_external_userid')
		  AND json_extract(profiles.doc, '$.wecom_external_userid') = profiles.id
		  AND json_extract(n.value, '$.i') != profiles.id
		  AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = json_extract(n.value, '$.i'))
		RETURNING uid, id`: `UPDATE profiles SET id = n.e->>'i'
		FROM jsonb_array_elements($1::jsonb) AS n(e)
		WHERE profiles.id = (n.e #>> '{d,wecom_external_userid}')
		  AND (profiles.doc->>'wecom_external_userid') = profiles.id
		  AND n.e->>'i' != profiles.id
		  AND NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = n.e->>'i')
		RETURNING uid, id`,

	// staff.go
	`INSERT OR IGNORE INTO staff_task_customers (run_id, step_id, cohort, uid, staff, external_userid, status)
		SELECT ?, ?, value->>'cohort', value->>'uid', value->>'staff', value->>'external_userid', value->>'status' FROM json_each(?)`: `INSERT INTO staff_task_customers (run_id, step_id, cohort, uid, staff, external_userid, status)
		SELECT $1, $2, (x.e->>'cohort')::bigint, (x.e->>'uid')::bigint, x.e->>'staff', x.e->>'external_userid', x.e->>'status' FROM jsonb_array_elements($3::jsonb) AS x(e)
		ON CONFLICT DO NOTHING`,

	`UPDATE staff_task_customers SET status = r.value->>'s', send_time = r.value->>'t'
		FROM json_each(?) r
		WHERE run_id = ? AND step_id = ? AND cohort = ? AND staff = ? AND part = ? AND external_userid = r.value->>'e' AND status IN (?, ?)`: `UPDATE staff_task_customers SET status = r.e->>'s', send_time = (r.e->>'t')::bigint
		FROM jsonb_array_elements($1::jsonb) AS r(e)
		WHERE run_id = $2 AND step_id = $3 AND cohort = $4 AND staff = $5 AND part = $6 AND external_userid = r.e->>'e' AND status IN ($7, $8)`,

	// traits.go
	`UPDATE OR IGNORE profiles SET doc = j.value->>'d', updated_at = ?
		FROM json_each(?) j WHERE profiles.uid = j.value->>'u'`: `UPDATE profiles SET doc = j.e->'d', updated_at = $1
		FROM jsonb_array_elements($2::jsonb) AS j(e) WHERE profiles.uid = (j.e->>'u')::bigint`,

	`INSERT OR REPLACE INTO trait_due (uid, at) SELECT value->>0, value->>1 FROM json_each(?)`: `INSERT INTO trait_due (uid, at)
		SELECT DISTINCT ON (x.e->>0) (x.e->>0)::bigint, (x.e->>1)::bigint FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY x.e->>0, x.n DESC
		ON CONFLICT (uid) DO UPDATE SET at = excluded.at`,

	`INSERT OR REPLACE INTO rfm_values (uid, last_ts, frequency, monetary)
			SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)`: `INSERT INTO rfm_values (uid, last_ts, frequency, monetary)
			SELECT DISTINCT ON (x.e->>0) (x.e->>0)::bigint, (x.e->>1)::bigint, (x.e->>2)::bigint, (x.e->>3)::float8 FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY x.e->>0, x.n DESC
			ON CONFLICT (uid) DO UPDATE SET last_ts = excluded.last_ts, frequency = excluded.frequency, monetary = excluded.monetary`,

	// windows.go
	`INSERT OR IGNORE INTO entry_window_users (window_id, uid, user_id, event_id)
					SELECT ?, value->>'u', value->>'i', value->>'e' FROM json_each(?)`: `INSERT INTO entry_window_users (window_id, uid, user_id, event_id)
					SELECT $1, (x.e->>'u')::bigint, x.e->>'i', (x.e->>'e')::bigint FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY x.n
					ON CONFLICT DO NOTHING`,
}

// pgUpsertDocs merges a list of {"i": key, "d": patch} into documents:
// the patches of one key are composed in list order first (PostgreSQL
// updates a row once per statement; SQLite applied them one by one).
func pgUpsertDocs(table, key string) string {
	return `INSERT INTO ` + table + ` (` + key + `, doc, updated_at)
		SELECT x.e->>'i', json_patch_agg(x.e->'d' ORDER BY x.n), $1 FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS x(e, n) GROUP BY x.e->>'i'
		ON CONFLICT(` + key + `) DO UPDATE SET doc = json_patch(` + table + `.doc, excluded.doc), updated_at = excluded.updated_at`
}

// pgNumbers turns the numbers PostgreSQL returns as numeric text into what
// SQLite returns: an int64 when written without a fraction or exponent.
func pgNumbers(aggs []Aggregate, vals []any) {
	for i, a := range aggs {
		if a.Fn != "min" && a.Fn != "max" {
			continue
		}
		s, ok := vals[i].(string)
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			vals[i] = n
		} else if f, err := strconv.ParseFloat(s, 64); err == nil {
			vals[i] = f
		}
	}
}

// pgPathArray turns a SQLite JSON path ($."a".b[0]) into a PostgreSQL
// text array literal ({"a","b","0"}).
func pgPathArray(path string) string {
	var keys []string
	p := strings.TrimPrefix(path, "$")
	for len(p) > 0 {
		switch p[0] {
		case '.':
			p = p[1:]
			if strings.HasPrefix(p, `"`) {
				end := strings.Index(p[1:], `"`)
				if end < 0 {
					end = len(p) - 1
				}
				keys = append(keys, p[1:end+1])
				p = p[min(end+2, len(p)):]
				continue
			}
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			keys = append(keys, p[:end])
			p = p[end:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				end = len(p) - 1
			}
			keys = append(keys, p[1:end])
			p = p[end+1:]
		default:
			keys = append(keys, p)
			p = ""
		}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
