package planner

import "strings"

// gooseFiles are goose SQL migrations, NNNNN_<change>_<phase>.sql.
//
// Every file is NO TRANSACTION, since its transactions are its own: goose
// then sends each statement by itself through database/sql, so each piece
// that must stay on one connection is one statement (StatementBegin/End):
// a whole transaction with its SET LOCAL guards, or a backfill's DO loop.
// A statement that cannot run in a transaction cannot share a string with
// anything (PostgreSQL refuses it in a multi-statement string), so its
// session SETs, the statement and its RESETs are three statements; goose
// runs a file's statements one after the other, so they go to the one
// connection its *sql.DB keeps idle, and a transaction's SET LOCAL ignores
// whatever a session SET left.
func gooseFiles(revs []revision, opts ExportOptions) map[string]string {
	files := map[string]string{}
	for _, r := range revs {
		var b strings.Builder
		for _, l := range r.header(opts) {
			b.WriteString("-- " + l + "\n")
		}
		b.WriteString("\n-- +goose NO TRANSACTION\n-- +goose Up\n")
		gooseUnits(&b, r.Up)
		b.WriteString("\n-- +goose Down\n")
		down := r.Down
		if r.Phase.Irreversible != "" {
			down = []sqlUnit{irreversibleUnit(r)}
		}
		gooseUnits(&b, down)
		files[r.Name+".sql"] = b.String()
	}
	return files
}

func gooseUnits(b *strings.Builder, units []sqlUnit) {
	if len(units) == 0 {
		b.WriteString("-- no SQL: nothing to do in the schema\n")
	}
	for _, u := range units {
		if u.Comment != "" {
			b.WriteString("-- " + u.Comment + "\n")
		}
		for _, s := range []string{u.Setup, u.SQL, u.Teardown} {
			if s != "" {
				b.WriteString("-- +goose StatementBegin\n" + s + "\n-- +goose StatementEnd\n")
			}
		}
	}
}
