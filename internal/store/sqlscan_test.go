package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryStatementHasAPostgresForm translates every SQL statement the
// store's code spells as a constant (the literal and its constant parts)
// and fails naming each one that has no PostgreSQL form: a statement added
// without its twin fails here, without a PostgreSQL server.
func TestEveryStatementHasAPostgresForm(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "postgres_sql.go" {
			continue
		}
		pf, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		parsed = append(parsed, pf)
	}
	consts := map[string]ast.Expr{}
	for _, f := range parsed {
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i < len(vs.Values) {
							consts[name.Name] = vs.Values[i]
						}
					}
				}
			}
		}
	}
	// value is the string a constant expression spells (ok false: not constant).
	var value func(e ast.Expr) (string, bool)
	value = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			if c, ok := consts[e.Name]; ok {
				return value(c)
			}
		case *ast.ParenExpr:
			return value(e.X)
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				a, ok1 := value(e.X)
				b, ok2 := value(e.Y)
				return a + b, ok1 && ok2
			}
		}
		return "", false
	}
	sqlish := regexp.MustCompile(`^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE)\b`)
	seen := map[string]bool{}
	n := 0
	for _, f := range parsed {
		ast.Inspect(f, func(node ast.Node) bool {
			e, ok := node.(ast.Expr)
			if !ok {
				return true
			}
			q, ok := value(e)
			if !ok {
				return true
			}
			if !sqlish.MatchString(q) || seen[q] {
				return false
			}
			seen[q] = true
			n++
			if _, err := translatePG(q); err != nil {
				t.Errorf("%s: %v", fset.Position(e.Pos()), err)
			}
			return false
		})
	}
	require.Greater(t, n, 100, "statements found")
}

// TestEveryMigrationHasAPostgresTwin: a SQLite migration NNN needs
// migrations/postgres/NNN_*.sql (the same number), or PostgreSQL stores
// would miss its tables.
func TestEveryMigrationHasAPostgresTwin(t *testing.T) {
	number := func(dir string) map[string]bool {
		names, err := filepath.Glob(filepath.Join("migrations", dir, "*.sql"))
		require.NoError(t, err)
		out := map[string]bool{}
		for _, n := range names {
			out[strings.SplitN(filepath.Base(n), "_", 2)[0]] = true
		}
		return out
	}
	require.Equal(t, number("sqlite"), number("postgres"), "store/migrations/sqlite and store/migrations/postgres")
}
