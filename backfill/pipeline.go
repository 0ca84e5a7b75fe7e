package backfill

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// execAndCommit sends pre, then sql, then COMMIT in one round trip, COMMIT
// after a sync point of its own: when a statement fails, the server does
// not wait for this process to roll back, the queued COMMIT ends the failed
// transaction at once. It returns the values of sql's single row as text.
func execAndCommit(ctx context.Context, conn *pgconn.PgConn, pre []string, sql string, args []any) ([]string, error) {
	params := make([][]byte, len(args))
	for i, v := range args {
		switch v := v.(type) {
		case nil:
		case string:
			params[i] = []byte(v)
		default:
			params[i] = fmt.Append(nil, v)
		}
	}
	p := conn.StartPipeline(ctx)
	for _, s := range pre {
		p.SendQueryParams(s, nil, nil, nil, nil)
	}
	p.SendQueryParams(sql, params, nil, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("COMMIT", nil, nil, nil, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return nil, err
	}
	var row []string
	var first error
	var tag string
	readers, syncs := 0, 0
	for syncs < 2 {
		res, err := p.GetResults()
		if err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				p.Close()
				return nil, err
			}
			if first == nil {
				first = err
			}
			continue
		}
		switch res := res.(type) {
		case nil:
			syncs = 2 // nothing more to read
		case *pgconn.PipelineSync:
			syncs++
		case *pgconn.ResultReader:
			main := syncs == 0 && readers == len(pre)
			readers++
			for res.NextRow() {
				if main && row == nil {
					for _, v := range res.Values() {
						row = append(row, string(v))
					}
				}
			}
			ct, err := res.Close()
			if err != nil && first == nil {
				first = err
			}
			if syncs == 1 {
				tag = ct.String()
			}
		}
	}
	if err := p.Close(); err != nil && first == nil {
		first = err
	}
	if first != nil {
		return nil, first
	}
	if tag != "COMMIT" {
		return nil, fmt.Errorf("transaction rolled back (%s)", tag)
	}
	return row, nil
}

// ints parses the integer columns of a row read as text.
func ints(row []string, n int) ([]int64, error) {
	if len(row) < n {
		return nil, fmt.Errorf("batch returned %d values, want %d", len(row), n)
	}
	out := make([]int64, n)
	for i := range n {
		v, err := strconv.ParseInt(row[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("batch result %d: %w", i+1, err)
		}
		out[i] = v
	}
	return out, nil
}
