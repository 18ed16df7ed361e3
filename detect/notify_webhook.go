package detect

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// WebhookSignatureHeader carries the HMAC-SHA256 of a webhook's body
// under the shared secret, as "sha256=" and 64 hex digits (the form
// GitHub's webhooks use, so receivers' existing checks work).
const WebhookSignatureHeader = "X-Phivault-Signature-256"

// DefaultWebhookTimeout bounds one webhook request.
const DefaultWebhookTimeout = 10 * time.Second

// Webhook POSTs alerts as JSON to URL:
//
//	{"sent": "2026-12-06T05:00:00Z", "alerts": [{"id": …, "rule": …, …}]}
//
// each alert in the shape of GET /security/alerts/{id} (ids only, no
// triage notes). The body is signed: WebhookSignatureHeader holds
// "sha256=" + hex(HMAC-SHA256(Secret, body)); a receiver recomputes it
// over the raw body, compares in constant time, and may reject a "sent"
// too old to stop replays. A network error, a 408, a 429 or a 5xx answer
// is retried with exponential backoff; other answers are final. A retried
// delivery may arrive twice: deduplicate on id and severity.
type Webhook struct {
	URL    string
	Secret []byte // required: an unsigned webhook could be forged by anyone
	// Client sends the requests. Default: an http.Client with
	// DefaultWebhookTimeout.
	Client *http.Client
	// Attempts, Backoff and MaxBackoff bound the retries. Defaults
	// DefaultNotifyAttempts, DefaultNotifyBackoff, DefaultNotifyMaxBackoff.
	Attempts            int
	Backoff, MaxBackoff time.Duration
	// Now stamps "sent". Default time.Now.
	Now func() time.Time
}

var _ Notifier = (*Webhook)(nil)

type webhookBody struct {
	Sent   time.Time   `json:"sent"`
	Alerts []AlertView `json:"alerts"`
}

// Notify implements Notifier.
func (wh *Webhook) Notify(ctx context.Context, alerts []*Alert) error {
	if len(wh.Secret) == 0 {
		return fmt.Errorf("detect: webhook: no secret configured")
	}
	now := time.Now
	if wh.Now != nil {
		now = wh.Now
	}
	body := webhookBody{Sent: now().UTC(), Alerts: make([]AlertView, len(alerts))}
	for i, a := range alerts {
		body.Alerts[i] = viewOf(a)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("detect: webhook: %w", err)
	}
	mac := hmac.New(sha256.New, wh.Secret)
	mac.Write(b)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	client := wh.Client
	if client == nil {
		client = &http.Client{Timeout: DefaultWebhookTimeout}
	}
	err = retry(ctx, wh.Attempts, wh.Backoff, wh.MaxBackoff, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(b))
		if err != nil { // its message would quote the URL, and any token in it
			return errPermanent{errors.New("the webhook URL is not valid")}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "phivault-detect")
		req.Header.Set(WebhookSignatureHeader, sig)
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the URL may carry a token: keep it out of logs
			}
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return nil
		case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return fmt.Errorf("answered %d", resp.StatusCode)
		}
		return errPermanent{fmt.Errorf("answered %d", resp.StatusCode)}
	})
	if err != nil {
		return fmt.Errorf("detect: webhook: %w", err)
	}
	return nil
}
