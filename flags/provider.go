package flags

// This file is the OpenFeature provider. It is long because the provider
// is one type whose parts share its snapshot of the flags and whether that
// snapshot is stale: the options, the session that loads and reloads the
// flags (LISTEN, polling as the fallback, with backoff), the events, and the
// evaluation methods OpenFeature requires. Heartbeats are in fleet.go.

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/open-feature/go-sdk/openfeature"
)

// Derived boolean keys: views of the stored string flags.
const (
	ReadNewSuffix  = ".read_new"
	WriteOldSuffix = ".write_old"
	WriteNewSuffix = ".write_new"
)

// Boolean variants of the derived flags.
const (
	On  = "on"
	Off = "off"
)

// derived are the boolean flags computed from a stored flag: for
// <change>.read, <change>.read_new; for <change>.write, .write_old and
// .write_new.
func derived(f Flag) map[string]bool {
	switch {
	case strings.HasSuffix(f.Key, ReadSuffix):
		id := strings.TrimSuffix(f.Key, ReadSuffix)
		return map[string]bool{id + ReadNewSuffix: f.Variant == New}
	case strings.HasSuffix(f.Key, WriteSuffix):
		id := strings.TrimSuffix(f.Key, WriteSuffix)
		return map[string]bool{
			id + WriteOldSuffix: f.Variant == Old || f.Variant == Both,
			id + WriteNewSuffix: f.Variant == Both || f.Variant == New,
		}
	}
	return nil
}

// boolFlag is a derived boolean flag and the stored flag it comes from.
type boolFlag struct {
	value  bool
	source Flag
}

// snapshot is an immutable view of the flags table.
type snapshot struct {
	strings  map[string]Flag
	booleans map[string]boolFlag
	// answers holds every key's resolution, metadata included, built once
	// per snapshot: an evaluation only looks it up and sets the reason.
	answers map[string]*answer
}

// answer is what evaluating a key returns.
type answer struct {
	isString bool   // a stored flag, whose value is its variant; otherwise a derived boolean
	b        bool   // a derived boolean's value
	variant  string // the stored variant, or on/off
	// details are the resolution while the snapshot is current (STATIC) and
	// while it is stale (CACHED). Their metadata is shared by every
	// evaluation: the SDK hands each caller a copy.
	details [2]openfeature.ProviderResolutionDetail
}

func newAnswer(isString, b bool, variant string, metadata openfeature.FlagMetadata) *answer {
	a := &answer{isString: isString, b: b, variant: variant}
	for i, r := range [2]openfeature.Reason{openfeature.StaticReason, openfeature.CachedReason} {
		a.details[i] = openfeature.ProviderResolutionDetail{Reason: r, Variant: variant, FlagMetadata: metadata}
	}
	return a
}

func newSnapshot(list []Flag) *snapshot {
	s := &snapshot{strings: map[string]Flag{}, booleans: map[string]boolFlag{}, answers: map[string]*answer{}}
	for _, f := range list {
		s.strings[f.Key] = f
		s.answers[f.Key] = newAnswer(true, false, f.Variant, metadata(f))
	}
	for _, f := range list {
		for k, v := range derived(f) {
			s.booleans[k] = boolFlag{value: v, source: f}
			if _, stored := s.strings[k]; stored {
				continue // a stored flag of that name wins
			}
			m := metadata(f)
			m["key"] = k
			m["derived_from"] = f.Key
			variant := Off
			if v {
				variant = On
			}
			s.answers[k] = newAnswer(false, v, variant, m)
		}
	}
	return s
}

// changed lists the keys (stored and derived) whose value or metadata differ.
func (s *snapshot) changed(next *snapshot) []string {
	var keys []string
	for k, f := range next.strings {
		if old, ok := s.strings[k]; !ok || !sameFlag(old, f) {
			keys = append(keys, k)
		}
	}
	for k := range s.strings {
		if _, ok := next.strings[k]; !ok {
			keys = append(keys, k)
		}
	}
	for k, b := range next.booleans {
		if old, ok := s.booleans[k]; !ok || old.value != b.value || !sameFlag(old.source, b.source) {
			keys = append(keys, k)
		}
	}
	for k := range s.booleans {
		if _, ok := next.booleans[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func sameFlag(a, b Flag) bool {
	return a.Variant == b.Variant && a.ChangeID == b.ChangeID && a.Phase == b.Phase &&
		a.UpdatedAt.Equal(b.UpdatedAt) && maps.Equal(a.Metadata, b.Metadata)
}

// Option configures a Provider.
type Option func(*Provider)

// WithSchema sets the planner's state schema (default "planner").
func WithSchema(schema string) Option { return func(p *Provider) { p.schema = schema } }

// WithPollInterval sets how often the provider reloads without a
// notification (default 5s). Notifications make changes visible at once;
// polling covers connections that cannot LISTEN: a provider that polls only
// (through a pooler in transaction mode without WithListenURL, or with
// WithoutListen) sees a change within the poll interval.
func WithPollInterval(d time.Duration) Option {
	return func(p *Provider) {
		if d > 0 {
			p.poll = d
		}
	}
}

// WithoutListen makes the provider poll only: flag changes reach the
// application within the poll interval.
func WithoutListen() Option { return func(p *Provider) { p.listen = false } }

// WithListenURL gives a direct (or session-mode pooler) URL of the same
// database, used only to LISTEN for flag changes, for a provider whose
// connString goes through a pooler in transaction mode: changes then arrive
// at once rather than within the poll interval. The flags are still read
// through connString. A listen URL that shares sessions too gets one
// warning, and the provider polls.
func WithListenURL(url string) Option { return func(p *Provider) { p.listenURL = url } }

// WithService names the application in its heartbeats (default: the
// program's name); planner fleet and the gates' reasons show it.
func WithService(name string) Option {
	return func(p *Provider) {
		if name != "" {
			p.service = name
		}
	}
}

// WithHeartbeat sets how often the provider records which flags its
// instance has loaded (default 5s; 0 turns heartbeats off, and the
// planner's gates fall back to counting deploys). A heartbeat is one small
// upsert into the fleet table, made also right after the flags change.
func WithHeartbeat(every time.Duration) Option {
	return func(p *Provider) { p.heartbeatEvery = max(every, 0) }
}

// WithLogger sets where the provider logs connection trouble (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(p *Provider) {
		if l != nil {
			p.log = l
		}
	}
}

// Provider is an OpenFeature provider serving the planner's flags from a
// snapshot of the flags table. It reloads the snapshot when the engine
// publishes (LISTEN/NOTIFY on a dedicated connection) and every poll
// interval, reconnects with backoff when the connection drops, and keeps
// serving the last snapshot while the database is unreachable.
//
// Its queries depend on no session state, so it works through a pooler in
// transaction mode (PgBouncer, RDS Proxy, Supavisor). There LISTEN cannot
// work: the provider detects such a pooler when it starts and, unless
// WithListenURL gives a direct URL to listen on, polls instead and logs so
// once; changes then reach the application within the poll interval.
//
// Reasons: STATIC while the snapshot is current (a flag has one value for
// every evaluation context), CACHED while the provider is stale (the
// database is unreachable and the value may be out of date), ERROR with
// FLAG_NOT_FOUND or TYPE_MISMATCH otherwise.
//
// Events: PROVIDER_CONFIGURATION_CHANGED (FlagChanges lists the keys) after a
// reload that changed something, PROVIDER_STALE when the connection is lost,
// PROVIDER_READY when it is back.
type Provider struct {
	connString string
	schema     string
	poll       time.Duration
	listen     bool
	listenURL  string
	log        *slog.Logger

	events chan openfeature.Event

	// The instance's heartbeat (fleet.go); only the run goroutine
	// touches the last two.
	service, instance, host string
	heartbeatEvery          time.Duration
	nextHeartbeat           time.Time
	heartbeatRefused        bool

	mu      sync.RWMutex
	current *snapshot // nil until the first load
	stale   bool
	failing bool // the last connection attempt or session failed
	cancel  context.CancelFunc
	done    chan struct{}

	// serving is current and stale as evaluations read them, replaced
	// under mu whenever either changes: evaluations take no lock.
	serving atomic.Pointer[view]
}

// view is a snapshot and whether it is stale (nil before Init).
type view struct {
	snap  *snapshot
	stale bool
}

// publishView makes current and stale what evaluations see; mu is held.
func (p *Provider) publishView() { p.serving.Store(&view{snap: p.current, stale: p.stale}) }

var (
	_ openfeature.FeatureProvider          = (*Provider)(nil)
	_ openfeature.StateHandler             = (*Provider)(nil)
	_ openfeature.ContextAwareStateHandler = (*Provider)(nil)
	_ openfeature.EventHandler             = (*Provider)(nil)
)

// ProviderName is the provider's name in OpenFeature metadata.
const ProviderName = "planner"

// DefaultPollInterval is how often the provider reloads without a NOTIFY.
const DefaultPollInterval = 5 * time.Second

// NewProvider returns a provider reading the flags through connString (a
// PostgreSQL URL or DSN: a direct connection or any pooler; see
// WithListenURL for a pooler in transaction mode). Nothing connects before
// Init.
func NewProvider(connString string, opts ...Option) *Provider {
	p := &Provider{
		connString:     connString,
		schema:         "planner",
		poll:           DefaultPollInterval,
		listen:         true,
		log:            slog.Default(),
		events:         make(chan openfeature.Event, 64),
		service:        defaultService(),
		heartbeatEvery: DefaultHeartbeatInterval,
	}
	for _, o := range opts {
		o(p)
	}
	p.instance, p.host = instanceID(p.service)
	return p
}

// InstanceID is the id this provider's heartbeats carry (planner fleet).
func (p *Provider) InstanceID() string { return p.instance }

// Metadata names the provider.
func (p *Provider) Metadata() openfeature.Metadata { return openfeature.Metadata{Name: ProviderName} }

// Hooks returns none.
func (p *Provider) Hooks() []openfeature.Hook { return nil }

// EventChannel is where the provider emits events for the SDK.
func (p *Provider) EventChannel() <-chan openfeature.Event { return p.events }

// initTimeout bounds how long Init waits for the first snapshot.
const initTimeout = 10 * time.Second

// Init loads the first snapshot and starts the goroutine that keeps it
// current. When the database is unreachable Init fails (the SDK marks the
// provider in error and applications get their defaults) but the goroutine
// keeps trying and emits PROVIDER_READY once it has loaded the flags.
func (p *Provider) Init(evalCtx openfeature.EvaluationContext) error {
	return p.InitWithContext(context.Background(), evalCtx)
}

// InitWithContext is Init bounded by ctx (and by 10s when ctx has no
// deadline); the SDK calls it from SetProviderWithContextAndWait.
func (p *Provider) InitWithContext(ctx context.Context, _ openfeature.EvaluationContext) error {
	p.mu.Lock()
	if p.cancel != nil {
		p.mu.Unlock()
		return nil
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan struct{})
	p.current = nil
	p.stale, p.failing = false, false
	p.publishView()
	done := p.done
	p.mu.Unlock()

	first := make(chan error, 1)
	go func() {
		defer close(done)
		p.run(runCtx, first)
	}()
	if _, ok := ctx.Deadline(); !ok {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, initTimeout)
		defer stop()
	}
	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		p.mu.Lock()
		p.stale = true // the first good load announces PROVIDER_READY
		p.publishView()
		p.mu.Unlock()
		return fmt.Errorf("flags: no snapshot yet: %w", ctx.Err())
	}
}

// Shutdown stops the goroutine and closes its connection.
func (p *Provider) Shutdown() { _ = p.ShutdownWithContext(context.Background()) }

// ShutdownWithContext is Shutdown bounded by ctx.
func (p *Provider) ShutdownWithContext(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel = nil
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot returns the flags the provider currently serves, ordered by key.
func (p *Provider) Snapshot() []Flag {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.current == nil {
		return nil
	}
	out := slices.Collect(maps.Values(p.current.strings))
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// run keeps the snapshot current until ctx ends. The first load's outcome
// goes to first (once).
func (p *Provider) run(ctx context.Context, first chan<- error) {
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	reportFirst := func(err error) {
		if first != nil {
			first <- err
			first = nil
		}
	}
	var ls listenState // found once per run, kept across reconnects
	for ctx.Err() == nil {
		err := p.session(ctx, &ls, func() { reportFirst(nil); backoff.reset() })
		if ctx.Err() != nil {
			break
		}
		reportFirst(err)
		p.markStale(err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff.next()):
		}
	}
	reportFirst(ctx.Err())
}

// session connects, LISTENs (unless it polls only), loads, and then
// reloads on every notification or poll tick until a connection fails.
// loaded runs after each load.
func (p *Provider) session(ctx context.Context, ls *listenState, loaded func()) error {
	conn, err := p.connect(ctx, p.connString)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	listen, err := p.listener(ctx, conn, ls)
	if err != nil {
		return err
	}
	if listen != nil && listen != conn {
		defer closeConn(listen)
	}
	// Load after LISTEN so that no publish falls between the two.
	var nextPoll time.Time
	notified := true
	for {
		changed := false
		if notified || !time.Now().Before(nextPoll) {
			var err error
			if changed, err = p.reload(ctx, conn); err != nil {
				return err
			}
			loaded()
			nextPoll = time.Now().Add(p.poll)
		}
		p.sendHeartbeat(ctx, conn, changed)
		until := nextPoll
		if p.heartbeatEvery > 0 && p.nextHeartbeat.Before(until) {
			until = p.nextHeartbeat
		}
		var err error
		if notified, err = p.wait(ctx, listen, time.Until(until)); err != nil {
			return err
		}
	}
}

// wait returns after a notification on listen (nil: polling only), true,
// or after d, false; an error means the connection is unusable or ctx ended.
func (p *Provider) wait(ctx context.Context, listen *pgx.Conn, d time.Duration) (bool, error) {
	waitCtx, cancel := context.WithTimeout(ctx, max(d, time.Millisecond))
	defer cancel()
	if listen == nil {
		<-waitCtx.Done()
		return false, ctx.Err()
	}
	_, err := listen.WaitForNotification(waitCtx)
	if err != nil && ctx.Err() == nil && waitCtx.Err() != nil {
		return false, nil // time is up: poll or heartbeat
	}
	return err == nil, err
}

// reload loads the flags and says whether anything changed.
func (p *Provider) reload(ctx context.Context, conn *pgx.Conn) (bool, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := List(qctx, conn, p.schema)
	if err != nil {
		return false, err
	}
	next := newSnapshot(list)
	p.mu.Lock()
	prev, wasStale := p.current, p.stale
	p.current, p.stale, p.failing = next, false, false
	p.publishView()
	p.mu.Unlock()
	if wasStale {
		p.log.Info("flags: connection back, serving current flags")
		p.emit(openfeature.ProviderReady, "flags reloaded after the connection came back", nil)
	}
	if prev == nil {
		return true, nil
	}
	keys := prev.changed(next)
	if len(keys) > 0 {
		p.emit(openfeature.ProviderConfigChange, "flags changed", keys)
	}
	return len(keys) > 0, nil
}

// markStale records a failed connection. The first failure after a good
// session emits PROVIDER_STALE; before the first snapshot there is nothing
// to be stale about (Init reports the error instead), but the next good
// load still announces PROVIDER_READY. Only the first failure of an outage
// is a warning: the retries that follow log at Debug.
func (p *Provider) markStale(err error) {
	p.mu.Lock()
	had, repeat := p.current != nil, p.failing
	emit := had && !p.stale
	p.stale, p.failing = true, true
	p.publishView()
	p.mu.Unlock()
	switch {
	case repeat:
		p.log.Debug("flags: database still unreachable, retrying", "error", err)
	case had:
		p.log.Warn("flags: database unreachable, serving the last snapshot; retrying", "error", err)
	default:
		p.log.Warn("flags: cannot load the flags, applications get their defaults; retrying", "error", err)
	}
	if emit {
		p.emit(openfeature.ProviderStale, "database unreachable: "+err.Error(), nil)
	}
}

// emit sends an event without blocking: the loop must go on even when no
// SDK reads the channel (values are what matters; events are hints).
func (p *Provider) emit(t openfeature.EventType, msg string, keys []string) {
	ev := openfeature.Event{ProviderName: ProviderName, EventType: t,
		ProviderEventDetails: openfeature.ProviderEventDetails{Message: msg, FlagChanges: keys}}
	select {
	case p.events <- ev:
	default:
		p.log.Warn("flags: event dropped, nobody reads the event channel", "event", t)
	}
}

func metadata(f Flag) openfeature.FlagMetadata {
	m := openfeature.FlagMetadata{}
	for k, v := range f.Metadata {
		m[k] = v
	}
	m["key"] = f.Key
	m["change_id"] = f.ChangeID
	m["phase"] = f.Phase
	m["updated_at"] = f.UpdatedAt.UTC().Format(time.RFC3339Nano)
	return m
}

// resolve finds key's answer and whether the snapshot is stale, or an
// error detail.
func (p *Provider) resolve(key string) (*answer, bool, *openfeature.ProviderResolutionDetail) {
	v := p.serving.Load()
	if v == nil || v.snap == nil {
		return nil, false, &openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewProviderNotReadyResolutionError("flags not loaded yet"),
			Reason:          openfeature.ErrorReason}
	}
	if a, ok := v.snap.answers[key]; ok {
		return a, v.stale, nil
	}
	return nil, v.stale, &openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("no flag %q in %s.flags", key, p.schema)),
		Reason:          openfeature.ErrorReason}
}

func mismatch(key, is, want string) openfeature.ProviderResolutionDetail {
	return openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewTypeMismatchResolutionError(fmt.Sprintf("flag %q is a %s flag, not %s", key, is, want)),
		Reason:          openfeature.ErrorReason}
}

// kind names the type of a found flag for mismatch messages.
func (a *answer) kind() string {
	if a.isString {
		return "string"
	}
	return "boolean"
}

// detail is the answer's resolution detail at the snapshot's staleness.
func (a *answer) detail(stale bool) openfeature.ProviderResolutionDetail {
	if stale {
		return a.details[1]
	}
	return a.details[0]
}

// StringEvaluation resolves <change>.read and <change>.write: the value is
// the variant.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	a, stale, fail := p.resolve(flag)
	if fail != nil {
		return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: *fail}
	}
	if !a.isString {
		return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: mismatch(flag, "boolean", "string")}
	}
	return openfeature.StringResolutionDetail{Value: a.variant, ProviderResolutionDetail: a.detail(stale)}
}

// BooleanEvaluation resolves the derived boolean flags (<change>.read_new,
// .write_old, .write_new); the string flags give TYPE_MISMATCH.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, defaultValue bool, _ openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	a, stale, fail := p.resolve(flag)
	if fail != nil {
		return openfeature.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: *fail}
	}
	if a.isString {
		return openfeature.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: mismatch(flag, "string", "boolean")}
	}
	return openfeature.BoolResolutionDetail{Value: a.b, ProviderResolutionDetail: a.detail(stale)}
}

// FloatEvaluation returns the default: the planner has no numeric flags.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, defaultValue float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return openfeature.FloatResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.noSuchType(flag, "float")}
}

// IntEvaluation returns the default: the planner has no numeric flags.
func (p *Provider) IntEvaluation(_ context.Context, flag string, defaultValue int64, _ openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return openfeature.IntResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.noSuchType(flag, "integer")}
}

// ObjectEvaluation returns the default: the planner has no object flags.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, defaultValue any, _ openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return openfeature.InterfaceResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.noSuchType(flag, "object")}
}

func (p *Provider) noSuchType(flag, want string) openfeature.ProviderResolutionDetail {
	a, _, fail := p.resolve(flag)
	if fail != nil {
		return *fail
	}
	return mismatch(flag, a.kind(), want)
}

// backoff grows a delay exponentially with jitter, up to a cap.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(minDelay, maxDelay time.Duration) *backoff {
	return &backoff{min: minDelay, max: maxDelay, cur: minDelay}
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	// jitter: between d/2 and d, so many app instances do not reconnect in step
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.cur = b.min }
