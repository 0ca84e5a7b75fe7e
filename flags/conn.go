package flags

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/internal/pooler"
)

// connect opens one of the provider's connections. Its queries prepare and
// cache nothing on the server (QueryExecModeExec: one round trip, unnamed
// statement), so they work through a pooler that hands the server session to
// other clients between transactions.
func (p *Provider) connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "planner-flags"
	}
	if cfg.DefaultQueryExecMode != pgx.QueryExecModeSimpleProtocol {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

// listenState is what a run found out about its listen connection's URL.
type listenState struct {
	probed   bool // checked for a pooler
	pollOnly bool // found one: LISTEN cannot work
}

// listener returns the connection to LISTEN on, or nil to poll only. It
// uses the WithListenURL connection if given, else query itself. The first
// time in a run it checks that connection's URL: through a pooler in
// transaction or statement mode a LISTEN would stay on a pooled server
// connection and deliver nothing, so the provider polls instead and says
// so once. The caller closes a returned connection other than query.
func (p *Provider) listener(ctx context.Context, query *pgx.Conn, ls *listenState) (*pgx.Conn, error) {
	if !p.listen || ls.pollOnly {
		return nil, nil
	}
	conn, url := query, p.connString
	if p.listenURL != "" {
		url = p.listenURL
		var err error
		if conn, err = p.connect(ctx, url); err != nil {
			return nil, fmt.Errorf("listen connection: %w", err)
		}
	}
	done := func() {
		if conn != query {
			closeConn(conn)
		}
	}
	if !ls.probed {
		shares, err := p.sharesSessions(ctx, conn, url)
		if err != nil {
			done()
			return nil, err
		}
		ls.probed, ls.pollOnly = true, shares
		if shares {
			done()
			p.logPollOnly()
			return nil, nil
		}
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel(p.schema)}.Sanitize()); err != nil {
		done()
		return nil, err
	}
	return conn, nil
}

// sharesSessions asks whether conn (to url) goes through a pooler in
// transaction or statement mode: not when it is direct, else
// pooler.SharesSessions decides, with a second, short-lived connection.
func (p *Provider) sharesSessions(ctx context.Context, conn *pgx.Conn, url string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if direct, err := pooler.Direct(ctx, conn); err != nil || direct {
		if err != nil {
			err = fmt.Errorf("check for a pooler: %w", err)
		}
		return false, err
	}
	other, err := p.connect(ctx, url)
	if err != nil {
		return false, fmt.Errorf("check for a pooler: %w", err)
	}
	defer closeConn(other)
	shares, err := pooler.SharesSessions(ctx, conn, other)
	if err != nil {
		return false, fmt.Errorf("check for a pooler: %w", err)
	}
	return shares, nil
}

func (p *Provider) logPollOnly() {
	if p.listenURL != "" {
		p.log.Warn(fmt.Sprintf("flags: the WithListenURL connection goes through a pooler in transaction or statement mode, where LISTEN cannot work: polling instead, so flag changes reach this application within the poll interval (%s); give WithListenURL a direct or session-mode URL", p.poll),
			"poll_interval", p.poll)
		return
	}
	p.log.Info(fmt.Sprintf("flags: connected through a pooler in transaction or statement mode, where LISTEN cannot work: polling instead, so flag changes reach this application within the poll interval (%s); give WithListenURL a direct or session-mode URL for prompt changes", p.poll),
		"poll_interval", p.poll)
}
