package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/envelope"
	"github.com/phivault/phivault/keyring"
)

// keyStatus is what GET /admin/keys/status and "keys status -data" report.
type keyStatus struct {
	Current  phivault.KeyID `json:"current"`
	Versions []kekStatus    `json:"versions"`
	Rewrap   rewrapStatus   `json:"rewrap"`
	// Due says why rotation is due (dueReasons, with the default maximum
	// age), in the API's answer; empty if it is not.
	Due []string `json:"due,omitempty"`
}

type kekStatus struct {
	ID          phivault.KeyID `json:"id"`
	Created     time.Time      `json:"created"`
	Current     bool           `json:"current"`
	Compromised *time.Time     `json:"compromised,omitempty"`
	// Retired is when the version left the key file; its key is gone and
	// only this record stays, for breach analysis.
	Retired *time.Time `json:"retired,omitempty"`
	Keys    int        `json:"keys"` // stored keys (DEKs and the index key) it wraps
}

type rewrapStatus struct {
	Running  bool       `json:"running"`
	Done     int        `json:"done"`
	Total    int        `json:"total"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// keyManager rotates the keyring of a running server and rewraps the
// stored keys in the background. It implements admin.Keys.
type keyManager struct {
	keys   rotator
	store  phivault.Store
	logger *slog.Logger
	ctx    context.Context // the server's lifetime
	now    func() time.Time

	mu     sync.Mutex
	rewrap rewrapStatus
	wg     sync.WaitGroup
}

// Rotate makes a new KEK version current and starts the rewrap.
func (m *keyManager) Rotate(ctx context.Context) (phivault.KeyID, error) {
	m.mu.Lock()
	running := m.rewrap.Running
	m.mu.Unlock()
	if running {
		return "", phivault.Errorf(phivault.ECONFLICT, "A rewrap is still running; wait for it to finish (GET keys/status).")
	}
	id, err := m.keys.Rotate(ctx)
	if errors.Is(err, errKMSRotates) {
		// No new version: switch to the configured key, if stored keys
		// are under another one.
		pending, cerr := m.pending(ctx)
		if cerr != nil {
			return "", cerr
		}
		if pending == 0 {
			return "", err
		}
		id, err = m.keys.Current(), nil
	}
	if err != nil {
		return "", err
	}
	m.start()
	return id, nil
}

// pending counts the stored keys not wrapped under the current KEK, plus
// one if any key is still unbound (wrapped before wraps were bound to key
// ids), so that a rewrap binds it.
func (m *keyManager) pending(ctx context.Context) (int, error) {
	st, err := statusOf(ctx, m.store, m.keys)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range st.Versions {
		if !v.Current {
			n += v.Keys
		}
	}
	unbound, err := anyUnbound(ctx, m.store, "")
	if err != nil {
		return 0, err
	}
	if unbound {
		n++
	}
	return n, nil
}

// anyUnbound reports whether a stored key (under KEK kek, if set) is still
// unbound.
func anyUnbound(ctx context.Context, store phivault.Store, kek phivault.KeyID) (bool, error) {
	var ks []*phivault.WrappedKey
	err := store.View(ctx, func(tx phivault.StoreTx) (err error) {
		ks, err = tx.Keys(ctx, phivault.KeyFilter{KEK: kek, Unbound: true, Limit: 1})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("find unbound keys: %w", err)
	}
	return len(ks) > 0, nil
}

// bindIfNeeded binds, in the background, the stored keys wrapped under the
// current KEK before wraps were bound to key ids, and then makes the
// keyring refuse unbound wraps under it (envelope.EndUnbound); it leaves
// keys under other KEKs alone: for a KMS keyring at start, whose switch of
// keys waits for keys rotate.
func (m *keyManager) bindIfNeeded(ctx context.Context) error {
	accepting, err := m.keys.AcceptsUnbound(ctx)
	if err != nil {
		// Bound keys work without the tags; unbound ones do not open
		// until the keyring can read them.
		m.logger.Warn("cannot tell whether the keyring accepts unbound wraps; they do not open until it can", "code", phivault.ErrorCode(err), "error_type", errorType(err))
		return nil
	} else if len(accepting) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rewrap.Running {
		return nil
	}
	now := m.now().UTC()
	m.rewrap = rewrapStatus{Running: true, Started: &now}
	m.logger.Info("binding stored keys to their ids", "kek", string(m.keys.Current()))
	m.wg.Go(func() {
		done, err := endUnbound(m.ctx, m.store, m.keys, m.logger, m.progress)
		m.finish(done, err)
	})
	return nil
}

// endUnbound rebinds the stored keys still unbound under KEKs that accept
// unbound wraps, then makes the keyring refuse them under those KEKs
// (envelope.EndUnbound), and says so in the log.
func endUnbound(ctx context.Context, store phivault.Store, keys rotator, logger *slog.Logger, progress func(done, total int)) (int, error) {
	accepting, err := keys.AcceptsUnbound(ctx)
	if err != nil || len(accepting) == 0 {
		return 0, err
	}
	done, err := envelope.EndUnbound(ctx, store, keys, envelope.RewrapOptions{Progress: progress})
	if err != nil {
		return done, err
	}
	logger.Info("unbound key wraps refused from now on", "keks", fmt.Sprint(accepting), "rebound", done)
	for _, id := range accepting {
		if left, err := anyUnbound(ctx, store, id); err != nil {
			return done, err
		} else if left {
			logger.Warn("stored keys are still unbound and no longer open: forged, or written by a version before binding", "kek", string(id))
		}
	}
	return done, nil
}

// MarkCompromised marks a KEK version compromised and forces it out: a
// rotation if it is current, else a rewrap of what it still wraps.
func (m *keyManager) MarkCompromised(ctx context.Context, id phivault.KeyID) error {
	marker, ok := m.keys.(compromiseMarker)
	if !ok {
		return phivault.Errorf(phivault.EUNSUPPORTED, "This keyring keeps no compromise marks; run keys rotate to move every stored key off the exposed version.")
	}
	if err := marker.MarkCompromised(ctx, id, m.now()); errors.Is(err, keyring.ErrUnknownKEK) {
		return phivault.Errorf(phivault.ENOTFOUND, "The key file has no KEK version %s.", safeKEK(id))
	} else if err != nil {
		return err
	}
	m.logger.Warn("key-encryption key marked compromised", "kek", string(id))
	if m.keys.Current() == id {
		_, err := m.Rotate(ctx)
		return err
	}
	m.start()
	return nil
}

func safeKEK(id phivault.KeyID) string {
	if len(id) > 40 || strings.ContainsAny(string(id), "\"<>\n") {
		return "?"
	}
	return string(id)
}

// start runs a rewrap in the background unless one is running.
func (m *keyManager) start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rewrap.Running {
		return
	}
	now := m.now().UTC()
	m.rewrap = rewrapStatus{Running: true, Started: &now}
	m.wg.Go(m.run)
}

func (m *keyManager) run() {
	done, err := rewrapAndRetire(m.ctx, m.store, m.keys, m.logger, m.progress)
	m.finish(done, err)
}

// progress records a running rewrap's progress.
func (m *keyManager) progress(done, total int) {
	m.mu.Lock()
	m.rewrap.Done, m.rewrap.Total = done, total
	m.mu.Unlock()
}

// finish records the end of a rewrap.
func (m *keyManager) finish(done int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UTC()
	m.rewrap.Running, m.rewrap.Finished, m.rewrap.Done = false, &now, done
	if err != nil {
		m.rewrap.Error = "The rewrap stopped; it resumes on the next rotation or restart."
		m.logger.Error("rewrap stopped", "done", done, "error_type", fmt.Sprintf("%T", err))
	}
}

// resumeIfNeeded starts a rewrap when stored keys still refer to an older
// KEK version, e.g. after a crash during one, are unbound, or when the
// keyring still accepts unbound wraps under a KEK.
func (m *keyManager) resumeIfNeeded(ctx context.Context) error {
	n, err := m.pending(ctx)
	if err != nil {
		return err
	}
	accepting, err := m.keys.AcceptsUnbound(ctx)
	if err != nil {
		return err
	}
	if n > 0 || len(accepting) > 0 {
		m.logger.Info("resuming the rewrap of stored keys", "kek", string(m.keys.Current()))
		m.start()
	}
	return nil
}

// Wait waits for a running rewrap to stop.
func (m *keyManager) Wait() { m.wg.Wait() }

// Status reports the KEK versions and the rewrap.
func (m *keyManager) Status(ctx context.Context) (any, error) {
	st, err := statusOf(ctx, m.store, m.keys)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	st.Rewrap = m.rewrap
	m.mu.Unlock()
	st.Due = dueReasons(st, defaultMaxAge, m.now())
	return st, nil
}

// statusOf describes keys' versions and counts the stored keys each wraps.
func statusOf(ctx context.Context, store phivault.Store, keys rotator) (*keyStatus, error) {
	var counts map[phivault.KeyID]int
	if err := store.View(ctx, func(tx phivault.StoreTx) (err error) {
		counts, err = tx.KeyCounts(ctx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("count keys: %w", err)
	}
	st := &keyStatus{Current: keys.Current()}
	for _, v := range versionsWithCounts(keys, counts) {
		ks := kekStatus{ID: v.ID, Created: v.Created, Current: v.Current, Keys: counts[v.ID]}
		if !v.Compromised.IsZero() {
			c := v.Compromised
			ks.Compromised = &c
		}
		if !v.Retired.IsZero() {
			r := v.Retired
			ks.Retired = &r
		}
		st.Versions = append(st.Versions, ks)
	}
	return st, nil
}

// rewrapAndRetire ends the acceptance of unbound wraps (endUnbound),
// rewraps every stored key under the current KEK, then retires the versions
// no stored key refers to any more and makes the keyring refuse unbound
// wraps under the KEKs the rewrap emptied that it still accepts them under
// (a KMS key switched away from, which phivault never deletes).
func rewrapAndRetire(ctx context.Context, store phivault.Store, keys rotator, logger *slog.Logger, progress func(done, total int)) (int, error) {
	bound, err := endUnbound(ctx, store, keys, logger, progress)
	if err != nil {
		return bound, err
	}
	before, err := statusOf(ctx, store, keys)
	if err != nil {
		return bound, err
	}
	done, err := envelope.Rewrap(ctx, store, keys, envelope.RewrapOptions{Progress: progress})
	done += bound
	if err != nil {
		return done, err
	}
	st, err := statusOf(ctx, store, keys)
	if err != nil {
		return done, err
	}
	var emptied []phivault.KeyID
	for _, v := range before.Versions {
		if v.Keys > 0 && !v.Current && !slices.ContainsFunc(st.Versions, func(w kekStatus) bool { return w.ID == v.ID && w.Keys > 0 }) {
			emptied = append(emptied, v.ID)
		}
	}
	var retire []phivault.KeyID
	for _, v := range st.Versions {
		if !v.Current && v.Retired == nil && v.Keys == 0 && v.ID != st.Current {
			retire = append(retire, v.ID)
		}
	}
	if len(retire) > 0 {
		if err := keys.Retire(ctx, retire); err != nil {
			return done, fmt.Errorf("retire: %w", err)
		}
		logger.Info("retired key-encryption keys no stored key refers to", "keks", fmt.Sprint(retire))
	}
	if err := keys.RefuseUnbound(ctx, emptied); err != nil {
		return done, fmt.Errorf("refuse unbound wraps: %w", err)
	}
	logger.Info("rewrap finished", "keys", done, "kek", string(st.Current))
	return done, nil
}

// rotation policy
const defaultMaxAge = 365 * 24 * time.Hour

// dueReasons says why st needs a rotation under maxAge, if it does.
func dueReasons(st *keyStatus, maxAge time.Duration, now time.Time) []string {
	var out []string
	for _, v := range st.Versions {
		switch {
		case v.Current && !v.Created.IsZero() && now.Sub(v.Created) > maxAge:
			out = append(out, fmt.Sprintf("%s is older than %d days", v.ID, int(maxAge.Hours()/24)))
		case v.Current && v.Compromised != nil:
			out = append(out, fmt.Sprintf("%s (current) is marked compromised", v.ID))
		case v.Compromised != nil && v.Keys > 0:
			out = append(out, fmt.Sprintf("%s is marked compromised and still wraps %d keys", v.ID, v.Keys))
		}
	}
	return out
}

func printStatus(out io.Writer, st *keyStatus, maxAge time.Duration, now time.Time) {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KEK\tCREATED\tAGE (DAYS)\tKEYS\tCURRENT\tCOMPROMISED\tRETIRED")
	for _, v := range st.Versions {
		comp, retired := "-", "-"
		if v.Compromised != nil {
			comp = v.Compromised.UTC().Format(time.RFC3339)
		}
		if v.Retired != nil {
			retired = v.Retired.UTC().Format(time.RFC3339)
		}
		cur := ""
		if v.Current {
			cur = "yes"
		}
		created, age := "-", "-" // an HSM or KMS version may have no recorded creation
		if !v.Created.IsZero() {
			created, age = v.Created.UTC().Format(time.RFC3339), fmt.Sprint(int(now.Sub(v.Created).Hours()/24))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.ID, created, age, v.Keys, cur, comp, retired)
	}
	w.Flush()
	if st.Rewrap.Running {
		fmt.Fprintf(out, "Rewrap running: %d of %d keys.\n", st.Rewrap.Done, st.Rewrap.Total)
	} else if st.Rewrap.Error != "" {
		fmt.Fprintf(out, "Last rewrap: %s\n", st.Rewrap.Error)
	}
	if r := dueReasons(st, maxAge, now); len(r) > 0 {
		fmt.Fprintf(out, "Rotation due: %s. Run: phivault keys rotate\n", strings.Join(r, "; "))
	} else {
		fmt.Fprintf(out, "Rotation not due (maximum age %d days).\n", int(maxAge.Hours()/24))
	}
}

func (c *keysCommand) rotate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	var of offlineFlags
	of.register(fs)
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: phivault keys rotate [-data DIR | -url URL]\n\n"+
			"Adds a key-encryption key version, makes it current, rewraps every stored key\n"+
			"under it (reads and writes go on), then retires versions nothing refers to.\n"+
			"Back up the key file again afterwards. With -keyring pkcs11 the version is made\n"+
			"in the token and old ones destroyed there; with -keyring kms the KMS rotates the\n"+
			"key itself, and this rewraps only keys under another KMS key (after a change of\n"+
			"PHIVAULT_KMS_KEY_ID).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if of.data == "" {
		if err := c.adminPost(ctx, &cf, "/keys/$rotate"); err != nil {
			return err
		}
		return c.follow(ctx, &cf)
	}
	logger := slog.New(slog.NewJSONHandler(c.stderr, nil))
	o, err := of.open(ctx, logger)
	if err != nil {
		return err
	}
	defer o.Close()
	keys := &fileRotator{keys: o.keys, pass: o.pass}
	id, err := keys.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	fmt.Fprintf(c.stdout, "%s is now the current key-encryption key; rewrapping stored keys...\n", id)
	done, err := rewrapAndRetire(ctx, o.db, keys, logger, func(done, total int) {
		fmt.Fprintf(c.stdout, "  %d of %d keys rewrapped\n", done, total)
	})
	if err != nil {
		return fmt.Errorf("rewrap (run keys rotate again to resume): %w", err)
	}
	fmt.Fprintf(c.stdout, "Rewrapped %d keys under %s. Back up the key file now.\n", done, id)
	return nil
}

// follow polls the server's key status until its rewrap finishes.
func (c *keysCommand) follow(ctx context.Context, cf *clientFlags) error {
	for {
		body, err := adminCall(ctx, cf, http.MethodGet, "/keys/status")
		if err != nil {
			return err
		}
		var st keyStatus
		if err := json.Unmarshal(body, &st); err != nil {
			return fmt.Errorf("key status: %w", err)
		}
		fmt.Fprintf(c.stdout, "  %d of %d keys rewrapped\n", st.Rewrap.Done, st.Rewrap.Total)
		if !st.Rewrap.Running {
			if st.Rewrap.Error != "" {
				return errors.New(st.Rewrap.Error)
			}
			backup := ""
			if strings.HasPrefix(string(st.Current), "file:") {
				backup = " Back up the key file now."
			}
			fmt.Fprintf(c.stdout, "Done: every stored key is wrapped under %s.%s\n", st.Current, backup)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (c *keysCommand) status(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keys status", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	var of offlineFlags
	of.register(fs)
	maxAge := fs.Duration("max-age", defaultMaxAge, "rotation is due when the current KEK is older than this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var st *keyStatus
	if of.data == "" {
		body, err := adminCall(ctx, &cf, http.MethodGet, "/keys/status")
		if err != nil {
			return err
		}
		st = &keyStatus{}
		if err := json.Unmarshal(body, st); err != nil {
			return fmt.Errorf("key status: %w", err)
		}
	} else {
		o, err := of.open(ctx, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer o.Close()
		if st, err = statusOf(ctx, o.db, &fileRotator{keys: o.keys, pass: o.pass}); err != nil {
			return err
		}
	}
	printStatus(c.stdout, st, *maxAge, time.Now())
	return nil
}

func (c *keysCommand) compromised(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keys compromised", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var cf clientFlags
	cf.register(fs)
	var of offlineFlags
	of.register(fs)
	kek := fs.String("kek", "", "KEK version to mark compromised, e.g. file:1 (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kek == "" || strings.ContainsAny(*kek, "/?#") {
		return errorWithHint("no valid --kek", "phivault keys status shows the versions")
	}
	if of.data == "" {
		if err := c.adminPost(ctx, &cf, "/keys/"+*kek+"/$compromised"); err != nil {
			return err
		}
		return c.follow(ctx, &cf)
	}
	logger := slog.New(slog.NewJSONHandler(c.stderr, nil))
	o, err := of.open(ctx, logger)
	if err != nil {
		return err
	}
	defer o.Close()
	m := &keyManager{keys: &fileRotator{keys: o.keys, pass: o.pass}, store: o.db, logger: logger, ctx: ctx, now: time.Now}
	if err := m.MarkCompromised(ctx, phivault.KeyID(*kek)); err != nil {
		return err
	}
	m.Wait()
	if m.rewrap.Error != "" {
		return errors.New(m.rewrap.Error)
	}
	fmt.Fprintf(c.stdout, "%s marked compromised; every stored key is now wrapped under %s.\n", *kek, o.keys.Current())
	return nil
}
