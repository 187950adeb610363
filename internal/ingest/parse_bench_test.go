package ingest

import (
	"testing"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/loadgen"
)

// BenchmarkParseBatch validates `huabu bench ingest`'s /v1/batch bodies (500
// track events each) the way the API does before appending them to the
// accept log: the HTTP side's CPU per event, without the network.
func BenchmarkParseBatch(b *testing.B) {
	bodies := loadgen.BatchBodies(64, 500, 100000, 7)
	a := &API{opts: APIOptions{Validator: NewValidator(canvases.Schema{})}}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, fe := a.parse("batch", bodies[i%len(bodies)], now); fe != nil {
			b.Fatal(fe)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*500), "µs/event")
}
