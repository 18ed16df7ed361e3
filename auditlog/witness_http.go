package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// DefaultWebhookTimeout bounds one delivery to a webhook.
const DefaultWebhookTimeout = 5 * time.Second

// WebhookWitness POSTs each signed checkpoint, as text/plain, to an HTTPS
// URL; any 2xx status is an acknowledgment. It makes one attempt per
// Publish: put it behind a WitnessQueue for retries with backoff.
type WebhookWitness struct {
	// URL must use https.
	URL string
	// Client sends the requests. Default http.DefaultClient.
	Client *http.Client
	// Timeout bounds one attempt. Default DefaultWebhookTimeout.
	Timeout time.Duration
}

// Publish POSTs signedCheckpoint to w.URL.
func (w *WebhookWitness) Publish(ctx context.Context, signedCheckpoint []byte) error {
	u, err := url.Parse(w.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return errors.New("audit webhook: the URL must be https://host/path")
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(signedCheckpoint))
	if err != nil {
		return fmt.Errorf("audit webhook: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// The error is logged; a webhook's path or query often holds its
		// secret, so it names the host only.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("audit webhook to %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("audit webhook: status %d", resp.StatusCode)
	}
	return nil
}
