package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pquerna/otp/totp"
)

// consoleBench signs in to the console as one person and loads each page
// it finds, one request at a time.
type consoleBench struct {
	origin string
	http   *http.Client
}

var (
	benchNavLink    = regexp.MustCompile(`<li><a href="(/console/[^"]*)"`)
	benchDetailLink = regexp.MustCompile(`href="(/console/(?:alerts|incidents|access)/[^"/?#]+)"`)
	benchPending    = regexp.MustCompile(`name="pending" value="([^"]+)"`)
	benchCSRF       = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	benchServerTime = regexp.MustCompile(`(?:^|,)\s*app;dur=([0-9.]+)`)
)

// runConsole is "bench -mode console": it signs in as user (password in
// PHIVAULT_PASSWORD, TOTP secret in PHIVAULT_TOTP_SECRET: never flags),
// finds the pages the navigation links and the first detail page of each
// list, loads each n times, posts the access report's patient search for
// each name of searches n times, and reports the server's time (its
// Server-Timing header) and the time to the whole answer, p50, p95 and
// max, per page.
func (c *benchCommand) runConsole(ctx context.Context, cf clientFlags, user string, n int, extra, searches []string) error {
	password, err := secretFromEnv("PHIVAULT_PASSWORD")
	if err != nil {
		return err
	}
	secret, err := secretFromEnv("PHIVAULT_TOTP_SECRET")
	if err != nil {
		return err
	}
	if user == "" || password == "" || secret == "" {
		return errorWithHint("bench -mode console needs a person to sign in as", "phivault bench -mode console -user privacy.demo, with PHIVAULT_PASSWORD and PHIVAULT_TOTP_SECRET set")
	}
	hc, err := cf.httpClient(1)
	if err != nil {
		return err
	}
	jar, _ := cookiejar.New(nil)
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u, err := url.Parse(cf.url)
	if err != nil || u.Host == "" {
		return errorWithHint("-url is not a URL", "e.g. -url https://127.0.0.1:8443/fhir")
	}
	b := &consoleBench{origin: u.Scheme + "://" + u.Host, http: hc}
	if err := b.signIn(ctx, user, password, secret); err != nil {
		return err
	}
	pages, err := b.pages(ctx)
	if err != nil {
		return err
	}
	var loads []benchLoad
	for _, p := range pages {
		loads = append(loads, benchLoad{label: p, method: http.MethodGet, path: p})
	}
	for _, p := range extra {
		if !strings.HasPrefix(p, "/console/") {
			return errorWithHint("-page "+p+" is not a console page", "e.g. -page /console/access/PATIENT-ID")
		}
		loads = append(loads, benchLoad{label: p, method: http.MethodGet, path: p})
	}
	if len(searches) > 0 {
		_, _, page, err := b.get(ctx, "/console/access")
		csrf := benchCSRF.FindStringSubmatch(page)
		if err != nil || csrf == nil {
			return errorWithHint("the access report's search is not open to "+user, "-search needs a privacy officer")
		}
		for i, q := range searches {
			loads = append(loads, benchLoad{label: "POST /console/access (search " + strconv.Itoa(i+1) + ")", method: http.MethodPost,
				path: "/console/access", form: url.Values{"csrf": {csrf[1]}, "by": {"name"}, "q": {q}}})
		}
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "PAGE\tN\tSERVER p50\tp95\tmax\tWHOLE p50\tp95\tmax\n")
	for _, l := range loads {
		var server, whole []time.Duration
		for range n {
			t0 := time.Now()
			status, hdr, _, err := b.do(ctx, l.method, l.path, l.form)
			if err != nil {
				return err
			}
			if status != http.StatusOK {
				return fmt.Errorf("%s = %d", l.label, status)
			}
			whole = append(whole, time.Since(t0))
			if m := benchServerTime.FindStringSubmatch(hdr.Get("Server-Timing")); m != nil {
				ms, _ := strconv.ParseFloat(m[1], 64)
				server = append(server, time.Duration(ms*float64(time.Millisecond)))
			}
		}
		slices.Sort(server)
		slices.Sort(whole)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.label, n, pct(server, 50), pct(server, 95), pctMax(server),
			pct(whole, 50), pct(whole, 95), pctMax(whole))
	}
	return tw.Flush()
}

// benchLoad is one page the console bench loads: its label in the
// report, and the request. A search is labelled by its number, so that
// no name is printed.
type benchLoad struct {
	label, method, path string
	form                url.Values
}

func pctMax(sorted []time.Duration) time.Duration { return pct(sorted, 100) }

// get loads path and returns the status, headers and body.
func (b *consoleBench) get(ctx context.Context, path string) (int, http.Header, string, error) {
	return b.do(ctx, http.MethodGet, path, nil)
}

func (b *consoleBench) do(ctx context.Context, method, path string, form url.Values) (int, http.Header, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, b.origin+path, body)
	if err != nil {
		return 0, nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.http.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(out), err
}

// signIn follows the console's sign-in through the vault's login page.
func (b *consoleBench) signIn(ctx context.Context, user, password, secret string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.origin+"/console/signin", nil)
	if err != nil {
		return err
	}
	res, err := b.http.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/oauth/authorize?") {
		return fmt.Errorf("console sign-in = %d %q: is this a phivault with the console?", res.StatusCode, loc)
	}
	status, _, page, err := b.get(ctx, loc)
	if err != nil {
		return err
	}
	pending, csrf := benchPending.FindStringSubmatch(page), benchCSRF.FindStringSubmatch(page)
	if status != http.StatusOK || pending == nil || csrf == nil {
		return fmt.Errorf("login page = %d", status)
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		return fmt.Errorf("TOTP: %w", err)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, b.origin+"/oauth/login", strings.NewReader(url.Values{
		"pending": {pending[1]}, "csrf": {csrf[1]}, "username": {user}, "password": {password}, "totp": {code}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, err = b.http.Do(req); err != nil {
		return err
	}
	res.Body.Close()
	if loc = res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "/console/callback?") {
		return errors.New("the sign-in was refused: check the user, PHIVAULT_PASSWORD and PHIVAULT_TOTP_SECRET (a TOTP code is taken once: wait 30 s between runs)")
	}
	cb, err := url.Parse(loc)
	if err != nil {
		return err
	}
	if status, _, _, err = b.get(ctx, cb.RequestURI()); err != nil || status != http.StatusOK {
		return fmt.Errorf("console callback = %d %v", status, err)
	}
	return nil
}

// pages returns the console's pages for this person: those its
// navigation links, and the first detail page each of them links to.
func (b *consoleBench) pages(ctx context.Context) ([]string, error) {
	status, _, home, err := b.get(ctx, "/console/report")
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("console = %d %v", status, err)
	}
	var out []string
	for _, m := range benchNavLink.FindAllStringSubmatch(home, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	var details []string
	for _, p := range out {
		_, _, page, err := b.get(ctx, p)
		if err != nil {
			return nil, err
		}
		if m := benchDetailLink.FindStringSubmatch(page); m != nil && !slices.Contains(details, m[1]) {
			details = append(details, m[1])
		}
	}
	return append(out, details...), nil
}

// pathList is a repeatable flag.
type pathList []string

func (l *pathList) String() string     { return strings.Join(*l, ",") }
func (l *pathList) Set(v string) error { *l = append(*l, v); return nil }
