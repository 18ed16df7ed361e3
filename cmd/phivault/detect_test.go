package main

import (
	"strings"
	"testing"
)

// TestDetectConfig_refused checks that settings a server cannot honour
// stop it at start with a hint, instead of running without them.
func TestDetectConfig_refused(t *testing.T) {
	t.Setenv("PHIVAULT_DETECT_WEBHOOK_SECRET", "")
	for _, tt := range []struct {
		name string
		cfg  DetectConfig
		want string
	}{
		{"unknown rule", DetectConfig{Disabled: "new-source,no-such-rule"}, "no rule named no-such-rule"},
		{"bad change window", DetectConfig{ChangeWindows: "Someday 25:00-26:00"}, "change window"},
		{"plain http webhook", DetectConfig{Webhook: "http://soc.example/hook"}, "https URL"},
		{"webhook without a secret", DetectConfig{Webhook: "https://soc.example/hook"}, "signing secret"},
		{"mail without recipients", DetectConfig{SMTP: "mail.example:587", MailFrom: "a@example"}, "-detect-mail-to"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.settings()
			if err == nil {
				_, err = tt.cfg.notifiers()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
	ok := DetectConfig{Disabled: "new-source", ChangeWindows: "Sat 22:00-Sun 04:00,Tue 18:00-22:00"}
	s, err := ok.settings()
	if err != nil || len(s.Disabled) != 1 || !s.ChangeWindows.Declared() {
		t.Fatalf("settings = %+v, %v", s, err)
	}
	for _, r := range s.Rules() {
		if r.Name() == "new-source" {
			t.Fatal("a disabled rule runs")
		}
	}
}
