package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMaskDSN: no form of a PostgreSQL DSN shows its password.
func TestMaskDSN(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://huabu:s3cret@db:5432/huabu?sslmode=disable", "postgres://huabu:xxxxx@db:5432/huabu?sslmode=disable"},
		{"postgres://huabu@db/huabu?password=s3cret&sslmode=disable", "postgres://huabu@db/huabu?password=xxxxx&sslmode=disable"},
		{"postgresql://huabu:p%zz@db/huabu", "postgresql://huabu:xxxxx@db/huabu"}, // url.Parse refuses %zz
		{"postgres://db/huabu", "postgres://db/huabu"},
		{"host=db user=huabu password=s3cret dbname=huabu", "host=db user=huabu password=xxxxx dbname=huabu"},
		{"host=db password = 's3 cr\\'et' dbname=huabu", "host=db password = xxxxx dbname=huabu"},
		{"/var/lib/huabu/huabu.db", "/var/lib/huabu/huabu.db"},
	} {
		got := MaskDSN(tc.dsn)
		require.Equal(t, tc.want, got, tc.dsn)
		require.NotContains(t, got, "s3", tc.dsn)
	}
}
