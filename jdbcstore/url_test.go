package jdbcstore

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestConnString(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		dropped []string
		err     string
		options string // the options run-time parameter pgx sends, when not ""
	}{
		{in: "postgres://u:p@h:5432/db?sslmode=disable", want: "postgres://u:p@h:5432/db?sslmode=disable"},
		{in: "host=h user=u dbname=db", want: "host=h user=u dbname=db"},
		{in: "postgresql://h/db?user=u&password=p&socketTimeout=5", want: "postgresql://u:p@h/db", dropped: []string{"socketTimeout"}},
		{in: "postgres://h:5432/db", want: "postgres://h:5432/db"},
		{in: "jdbc:postgresql://db.example:5433/artemis?user=amq&password=s3cret", want: "postgres://amq:s3cret@db.example:5433/artemis"},
		{in: "jdbc:postgresql://h/db?user=u", want: "postgres://u@h/db"},
		{in: "jdbc:postgresql://h/db?user=u&password=p%26q", want: "postgres://u:p&q@h/db"},
		{in: "jdbc:postgresql://h/db?user=u&ssl=true", want: "postgres://u@h/db?sslmode=require"},
		{in: "jdbc:postgresql://h/db?ssl=true&sslmode=verify-full", want: "postgres://h/db?sslmode=verify-full"},
		{in: "jdbc:postgresql://h/db?currentSchema=amq&ApplicationName=broker&connectTimeout=5", want: "postgres://h/db?application_name=broker&connect_timeout=5&options=-c%20search_path%3Damq",
			options: "-c search_path=amq"},
		{in: "jdbc:postgresql://h/db?options=-c%20work_mem%3D8MB%20-c%20x.y%3Da%2Bb&currentSchema=s", want: "postgres://h/db?options=-c%20search_path%3Ds%20-c%20work_mem%3D8MB%20-c%20x.y%3Da%2Bb",
			options: "-c search_path=s -c work_mem=8MB -c x.y=a+b"},
		{in: "jdbc:postgresql://h/db?socketTimeout=30&reWriteBatchedInserts=true&fooBar=1", want: "postgres://h/db", dropped: []string{"fooBar", "reWriteBatchedInserts", "socketTimeout"}},
		{in: "jdbc:postgresql://h1:5432,h2:5433/db?user=u", want: "postgres://u@h1:5432,h2:5433/db"},
		{in: "jdbc:postgresql:artemis", want: "postgres://localhost/artemis"},
		{in: "jdbc:postgresql:/", want: "postgres://localhost/"},
		{in: "JDBC:PostgreSQL://h/db", want: "postgres://h/db"},
		{in: "jdbc:mysql://h/db", err: "only jdbc:postgresql"},
		{in: "  ", err: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, dropped, err := ConnString(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if !slices.Equal(dropped, tc.dropped) {
				t.Fatalf("dropped %v, want %v", dropped, tc.dropped)
			}
			cfg, err := pgx.ParseConfig(got)
			if err != nil {
				t.Fatalf("pgx refuses %q: %v", got, err)
			}
			if tc.options != "" && cfg.RuntimeParams["options"] != tc.options {
				t.Fatalf("pgx sends options %q, want %q (a space encoded as + is a + to libpq and pgx)", cfg.RuntimeParams["options"], tc.options)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for _, in := range []string{
		"jdbc:postgresql://h/db?user=u&password=topsecret",
		"jdbc:postgresql://h/db?password=topsecret&user=u",
		"postgres://u:topsecret@h/db",
	} {
		if got := redact(in); strings.Contains(got, "topsecret") {
			t.Errorf("redact(%q) = %q", in, got)
		}
	}
}

func FuzzConnString(f *testing.F) {
	for _, s := range []string{
		"jdbc:postgresql://h:5432/db?user=u&password=p",
		"jdbc:postgresql:db",
		"postgres://h/db",
		"jdbc:postgresql://[::1]:5432/db?ssl=true",
		"jdbc:postgresql://h/db?currentSchema=a&options=-c%20x%3Dy",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, _, err := ConnString(s)
		if err != nil {
			return
		}
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), "jdbc:") && !strings.HasPrefix(got, "postgres://") {
			t.Fatalf("%q converted to %q", s, got)
		}
	})
}
