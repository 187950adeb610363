package ingest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCanonicalFlatObject: whatever canonicalFlatObject accepts is valid
// JSON that json.Marshal of its decoding writes back byte for byte — what
// lets the API store such properties without decoding them.
func FuzzCanonicalFlatObject(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"amount":123,"order_id":"o1-2"}`, `{"screen":"home","version":"3.2.1"}`,
		`{"a":true,"b":false,"c":null,"d":-5,"e":0}`, `{"b":1,"a":2}`, `{"a":1,"a":2}`,
		`{"a":01}`, `{"a":-0}`, `{"a":1.5}`, `{"a":1e3}`, `{"a":"x<y"}`, `{"a":"\u00e9"}`,
		`{"a":"é"}`, `{"a":[1]}`, `{"a":{"b":1}}`, `{ "a":1}`, `{"a":1,}`, `{"a":1234567890123456}`,
		`{"a":123456789012345}`, `{"":1}`, `{"a":"b"}x`, `{"a"}`, `{"a":}`, `{"a":tru}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !canonicalFlatObject(raw) {
			return
		}
		require.True(t, json.Valid(raw), "%s", raw)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		b, err := json.Marshal(m)
		require.NoError(t, err)
		require.True(t, bytes.Equal(raw, b), "accepted %s, json.Marshal writes %s", raw, b)
	})
}

func TestCanonicalFlatObject(t *testing.T) {
	for s, want := range map[string]bool{
		`{}`: true, `{"amount":123,"order_id":"o1-2"}`: true, `{"screen":"home","version":"3.2.1"}`: true,
		`{"a":true,"b":false,"c":null,"d":-5,"e":0}`: true, `{"a":123456789012345}`: true, `{"":1}`: true,
		`{"b":1,"a":2}`: false, `{"a":1,"a":2}`: false, `{"a":01}`: false, `{"a":-0}`: false,
		`{"a":1.5}`: false, `{"a":1e3}`: false, `{"a":"x<y"}`: false, `{"a":"x&y"}`: false, `{"a":"\u00e9"}`: false,
		`{"a":"é"}`: false, `{"a":[1]}`: false, `{"a":{"b":1}}`: false, `{ "a":1}`: false, `{"a":1,}`: false,
		`{"a":1234567890123456}`: false, `{"a":"b"}x`: false, `{"a"}`: false, `{"a":}`: false, `{"a":tru}`: false,
		`{"a":1 }`: false, `{`: false, ``: false, `{"a":"b"`: false, `{"a":-}`: false,
	} {
		require.Equal(t, want, canonicalFlatObject([]byte(s)), s)
	}
}
