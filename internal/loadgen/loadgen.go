// Package loadgen builds the ingestion load the benchmarks send: /v1/batch
// bodies of purchases and app opens, as an app's backend sends them.
package loadgen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"
)

// BatchBodies builds n /v1/batch bodies of size track events each: one
// purchase in four, the rest app opens, of users u0…u(users-1), with
// timestamps spread over the last 90 days. Message ids are unique for a
// seed (the analytics SDKs batch up to 500 KB; 500 events are ~110 KB).
func BatchBodies(n, size, users int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	now := time.Now().UTC()
	bodies := make([][]byte, n)
	for i := range bodies {
		var b bytes.Buffer
		b.Grow(size * 220)
		b.WriteString(`{"batch":[`)
		for j := 0; j < size; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			u := r.IntN(users)
			ts := now.Add(-time.Duration(r.IntN(90*24)) * time.Hour).Format(time.RFC3339)
			if j%4 == 0 {
				fmt.Fprintf(&b, `{"type":"track","messageId":"%d-%d-%d","userId":"u%d","event":"purchase","properties":{"amount":%d,"order_id":"o%d-%d"},"timestamp":%q,"context":{"library":{"name":"bench"}}}`, seed, i, j, u, 10+r.IntN(480), i, j, ts)
			} else {
				fmt.Fprintf(&b, `{"type":"track","messageId":"%d-%d-%d","userId":"u%d","event":"app_open","properties":{"screen":"home","version":"3.2.1"},"timestamp":%q,"context":{"library":{"name":"bench"}}}`, seed, i, j, u, ts)
			}
		}
		b.WriteString(`],"sentAt":"` + now.Format(time.RFC3339) + `"}`)
		bodies[i] = b.Bytes()
	}
	return bodies
}
