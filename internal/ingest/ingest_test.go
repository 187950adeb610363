package ingest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

var schema = canvases.Schema{Attributes: map[string]canvases.FieldType{
	"name": canvases.TypeString, "balance": canvases.TypeNumber, "visits": canvases.TypeInteger,
	"vip": canvases.TypeBool, "birthday": canvases.TypeDate, "trial_ends_at": canvases.TypeTime,
}}

func openStore(t testing.TB) *store.SQLite {
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "h.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestImportJSONLRejectsWithLineNumbers(t *testing.T) {
	st := openStore(t)
	input := strings.Join([]string{
		`{"type":"identify","userId":"u1","traits":{"name":"张三","balance":12.5,"birthday":"1990-05-01","tags":["vip"]}}`,
		``,
		`{"userId":"u2","traits":{"balance":"lots"}}`,
		`{"userId":"u3","traits":{"visits":1.5}}`,
		`{"anonymousId":"a1","traits":{"name":"x"}}`,
		`{"userId":"u4","traits":{"name":`,
		`{"type":"track","userId":"u5","event":"purchase"}`,
		`{"userId":42,"traits":{"vip":true,"trial_ends_at":"2026-12-01T10:00:00+08:00"}}`,
		`{"userId":"u6","traits":{"rfm":{"r":5}}}`,
		`{"userId":"u7","traits":{"phone":13800000000}}`,
	}, "\n")
	sum, err := ImportProfiles(context.Background(), st, schema, strings.NewReader(input), Options{})
	require.NoError(t, err)
	require.Equal(t, 2, sum.Imported)
	var got []string
	for _, r := range sum.Rejected {
		got = append(got, r.String())
	}
	require.Equal(t, []string{
		`line 3: traits.balance: expected a number, got "lots"`,
		`line 4: traits.visits: expected a whole number, got 1.5`,
		`line 5: userId: userId is required (profiles are keyed by it; anonymousId alone is not enough)`,
		`line 6: invalid JSON: the line ends in the middle of the JSON value`,
		`line 7: type: expected an identify payload, got type "track"`,
		`line 9: traits.rfm: "rfm" is computed by Huabu and cannot be set`,
		`line 10: traits.phone: expected a string, got 13800000000`,
	}, got)
	p, err := st.ProfileByID(context.Background(), "42")
	require.NoError(t, err, "numeric userIds are accepted as strings")
	require.Contains(t, string(p.Doc), `"trial_ends_at":"2026-12-01T02:00:00Z"`, "times are stored in UTC")
}

func TestImportCSV(t *testing.T) {
	st := openStore(t)
	input := "\ufeffuser_id,name,balance,vip,birthday,tags,city\n" +
		"u1,张三,100.5,true,1990-05-01,vip|宝妈,上海\n" +
		"u2,李四,abc,false,,,北京\n" +
		"u3,王五,1,maybe,,,\n" +
		"u4,赵六,2\n" +
		",无名,3,true,,,\n" +
		"u5,\"孙,七\",3,false,1991-13-01,,\n"
	sum, err := ImportProfiles(context.Background(), st, schema, strings.NewReader(input), Options{})
	require.NoError(t, err)
	require.Equal(t, 1, sum.Imported)
	var got []string
	for _, r := range sum.Rejected {
		got = append(got, r.String())
	}
	require.Equal(t, []string{
		`line 3: balance: expected a number, got "abc"`,
		`line 4: vip: expected a bool, got "maybe"`,
		`line 5: 3 values for 7 columns`,
		`line 6: userId: userId is required`,
		`line 7: traits.birthday: expected a date (2006-01-02), got "1991-13-01"`,
	}, got)
	p, err := st.ProfileByID(context.Background(), "u1")
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"u1","name":"张三","balance":100.5,"vip":true,"birthday":"1990-05-01","tags":["vip","宝妈"],"city":"上海"}`, string(p.Doc))

	_, err = ImportProfiles(context.Background(), st, schema, strings.NewReader("name,city\nx,y\n"), Options{})
	require.ErrorContains(t, err, "line 1: the header has no user_id column")
}

func TestImportStaff(t *testing.T) {
	st := openStore(t)
	sum, err := ImportStaff(context.Background(), st, strings.NewReader("userid,name,grid,leader\nzhangwei,张伟,浦东一网格,chenjing\n,无名,,\nself,自己,,self\n"))
	require.NoError(t, err)
	require.Equal(t, 1, sum.Imported)
	require.Len(t, sum.Rejected, 2)
	require.Equal(t, 3, sum.Rejected[0].Line)
	staff, err := st.StaffByIDs(context.Background(), []string{"zhangwei"})
	require.NoError(t, err)
	require.Equal(t, "浦东一网格", staff["zhangwei"].Grid)

	sum, err = ImportStaff(context.Background(), st, strings.NewReader(`{"userid":"lina","name":"李娜","grid":"g","leader":"zhangwei"}`+"\n"+`{"userid":"x","colour":"red"}`))
	require.NoError(t, err)
	require.Equal(t, 1, sum.Imported)
	require.Contains(t, sum.Rejected[0].String(), `line 2: invalid JSON: json: unknown field "colour"`)
}

// BenchmarkImportProfiles imports JSONL identify payloads into SQLite and
// reports rows per second (`huabu import profiles` on a 1M-row file is the
// same code).
func BenchmarkImportProfiles(b *testing.B) {
	const rows = 100000
	var sb strings.Builder
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&sb, `{"type":"identify","userId":"u%07d","traits":{"name":"用户%d","balance":%d.5,"birthday":"1990-05-01","city":"上海","tags":["母婴"]}}`+"\n", i, i, i%5000)
	}
	input := sb.String()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := openStore(b)
		b.StartTimer()
		sum, err := ImportProfiles(context.Background(), st, schema, strings.NewReader(input), Options{})
		if err != nil || sum.Imported != rows {
			b.Fatal(err, sum.Imported)
		}
		b.ReportMetric(sum.Rate(), "rows/s")
	}
}
