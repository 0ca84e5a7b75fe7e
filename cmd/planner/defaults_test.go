package main

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgplanner/planner/planner"
)

// settingFlags names the flag of every setting of planner.Defaults
// ("Backfill.X" for the backfill's; those flags also come with the
// backfill- prefix on planner next), "" for a setting without one. A
// setting missing here fails the test: a new one must say.
var settingFlags = map[string]string{
	"LockTimeout":                 "lock-timeout",
	"StatementTimeout":            "statement-timeout",
	"LongStatementTimeout":        "long-statement-timeout",
	"Retries":                     "retries",
	"Wait":                        "wait",
	"LeaseTTL":                    "lease-ttl",
	"MinSoak":                     "min-soak",
	"FleetExpiry":                 "fleet-expiry",
	"PurgeAfter":                  "purge-after",
	"Backfill.Workers":            "workers",
	"Backfill.MaxWorkers":         "max-workers",
	"Backfill.TargetBatch":        "batch-time",
	"Backfill.MinBatch":           "min-batch",
	"Backfill.MaxBatch":           "max-batch",
	"Backfill.Sleep":              "sleep",
	"Backfill.MaxAppWait":         "max-app-wait",
	"Backfill.MaxReplicaLag":      "max-replica-lag",
	"Backfill.MaxReplicaLagBytes": "max-replica-lag-bytes",
	"Backfill.LockTimeout":        "",
	"Backfill.StatementTimeout":   "",
	"Backfill.MaxRetries":         "",
	"Backfill.Poll":               "",
	"Backfill.ProgressEvery":      "",
	"Backfill.SynchronousCommit":  "",
	"Backfill.StopWhenPaused":     "",
}

// Every flag of every command that sets one of the library's settings
// defaults to planner.Defaults, and every setting with a flag has it on
// some command.
func TestFlagDefaultsAreTheLibrarysDefaults(t *testing.T) {
	want := map[string]string{} // flag name -> its default, as the flag prints it
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			field, value := v.Type().Field(i), v.Field(i)
			name := prefix + field.Name
			if field.Type.Kind() == reflect.Struct {
				walk(name+".", value)
				continue
			}
			if field.Type.Kind() == reflect.Func || !field.IsExported() {
				continue
			}
			flag, ok := settingFlags[name]
			if !ok {
				t.Errorf("setting %s: no entry in settingFlags (its flag, or \"\" for none)", name)
				continue
			}
			if flag == "" {
				continue
			}
			switch {
			case field.Type == reflect.TypeFor[time.Duration]():
				want[flag] = time.Duration(value.Int()).String()
			case field.Type.Kind() == reflect.Int64:
				n := value.Int()
				want[flag] = byteSize{&n}.String()
			case field.Type.Kind() == reflect.Int:
				want[flag] = strconv.FormatInt(value.Int(), 10)
			default:
				t.Fatalf("setting %s: unexpected type %s", name, field.Type)
			}
			if prefix == "Backfill." {
				want["backfill-"+flag] = want[flag]
			}
		}
	}
	walk("", reflect.ValueOf(planner.Defaults))
	seen := map[string]bool{}
	var visit func(cmd *cobra.Command)
	visit = func(cmd *cobra.Command) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			def, ok := want[f.Name]
			if !ok {
				return
			}
			seen[f.Name] = true
			if f.DefValue != def {
				t.Errorf("%s --%s defaults to %s, the library to %s", cmd.CommandPath(), f.Name, f.DefValue, def)
			}
		})
		for _, sub := range cmd.Commands() {
			visit(sub)
		}
	}
	visit(newRoot())
	for flag := range want {
		if !seen[flag] {
			t.Errorf("no command has --%s", flag)
		}
	}
}
