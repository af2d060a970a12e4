package huawei

import (
	"io"
	"log"
	"os"
	"testing"
)

// TestMain silences the standard logger, as the plugin's main does: net/http
// quotes there the bytes an upstream sends unsolicited on an idle
// connection, and the hostile upstreams of these tests send credentials.
func TestMain(m *testing.M) {
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}
