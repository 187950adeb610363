package store

import (
	"strconv"
	"strings"
)

// pgEventAggregateQuery is the PostgreSQL statement for the aggregates
// aggs[idx], all of one event name: $1 is the uids, $2 the name, then
// args. Each aggregate reads the rows of its window (FILTER); first and
// last take the earliest and latest value of the events that carry the
// property, in (ts, id) order, as the correlated scans before them did.
// Properties are parsed as json (not jsonb), so values come back as they
// were sent, as on SQLite.
func pgEventAggregateQuery(name string, aggs []Aggregate, idx []int) (string, []any) {
	args := []any{name}
	index := map[any]int{}
	param := func(v any, cast string) string {
		i, ok := index[v]
		if !ok {
			args = append(args, v)
			i = len(args) + 1
			index[v] = i
		}
		return "$" + strconv.Itoa(i) + cast
	}
	oldest := aggs[idx[0]].Since
	for _, i := range idx {
		oldest = min(oldest, aggs[i].Since)
	}
	var b strings.Builder
	b.WriteString(pgRaw + "SELECT e.uid")
	for _, i := range idx {
		a := aggs[i]
		since := param(a.Since, "::bigint")
		var path string
		if a.Path != "" {
			path = param("p:"+pgPathArray(a.Path), "::text[]")
		}
		window := "e.ts >= " + since
		val := "(e.properties::json #> " + path + ")"
		num := "CASE WHEN json_typeof" + val + " = 'number' THEN (" + val + "::text)::numeric END"
		present := "coalesce(json_typeof" + val + ", 'null') <> 'null'"
		b.WriteString(", ")
		switch a.Fn {
		case "count":
			b.WriteString("count(*) FILTER (WHERE " + window + ")")
		case "sum":
			b.WriteString("coalesce(sum(" + num + ") FILTER (WHERE " + window + "), 0)::float8")
		case "min":
			b.WriteString("min(" + num + ") FILTER (WHERE " + window + ")")
		case "max":
			b.WriteString("max(" + num + ") FILTER (WHERE " + window + ")")
		case "first":
			b.WriteString("(array_agg(" + val + "::text ORDER BY e.ts, e.id) FILTER (WHERE " + window + " AND " + present + "))[1]")
		case "last":
			b.WriteString("(array_agg(" + val + "::text ORDER BY e.ts DESC, e.id DESC) FILTER (WHERE " + window + " AND " + present + "))[1]")
		case "first_ts":
			b.WriteString("min(e.ts) FILTER (WHERE " + window + ")")
		case "last_ts":
			b.WriteString("max(e.ts) FILTER (WHERE " + window + ")")
		default:
			panic("store: unknown aggregate " + a.Fn)
		}
	}
	b.WriteString(" FROM events e WHERE e.uid = ANY($1::bigint[]) AND e.name = $2 AND e.ts >= " + param(oldest, "::bigint") + " GROUP BY e.uid")
	// Strip the prefix that kept paths apart from other values in index.
	for i, a := range args {
		if s, ok := a.(string); ok && i > 0 {
			args[i] = s[2:]
		}
	}
	return b.String(), args
}
