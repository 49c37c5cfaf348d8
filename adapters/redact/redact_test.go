package redact_test

import (
	"strings"
	"testing"

	"github.com/marketplace/usersvc/adapters/redact"
)

func TestURLHidesEveryPasswordLikePart(t *testing.T) {
	const s = "S3cr3t-value"
	for _, raw := range []string{
		"postgres://u:" + s + "@db:5432/users",
		"postgres://u@db:5432/users?password=" + s,
		"postgres://u@db/users?sslmode=verify-full&sslpassword=" + s,
		"mysql://u@db/users?pwd=" + s + "&pass=" + s,
		"amqps://u:" + s + "@mq:5671/vhost",
		"https://ipapi.co/8.8.8.8/json/?key=" + s,
		"https://x/?token=" + s + "&secret=" + s + "&api_key=" + s,
		"postgres://u:" + s + "@db:5432/%zz?password=" + s, // unparsable
	} {
		got := redact.URL(raw)
		if strings.Contains(got, s) {
			t.Errorf("URL(%q) = %q still shows the secret", raw, got)
		}
	}
	if got := redact.URL("postgres://u@db:5432/users?sslmode=disable"); got != "postgres://u@db:5432/users?sslmode=disable" {
		t.Errorf("a URL without secrets changed: %q", got)
	}
}

func TestSecretsAndText(t *testing.T) {
	got := redact.Secrets("security.protocol=SASL_SSL,sasl.username=u,sasl.password=pw-123")
	if len(got) != 1 || got[0] != "pw-123" {
		t.Errorf("Secrets(KAFKA_CONFIG) = %v", got)
	}
	if msg := redact.Text("auth failed for pw-123", got...); strings.Contains(msg, "pw-123") {
		t.Errorf("Text = %q", msg)
	}
}
