package api

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/synchub/synchub/hub/auth"
)

// TestAdminActor: an authenticated admin acts under their own name whatever the body
// claims; without an admin identity the body's name is used.
func TestAdminActor(t *testing.T) {
	app := fiber.New()
	app.Get("/as/:admin", func(c *fiber.Ctx) error {
		if a := c.Params("admin"); a != "-" {
			auth.WithIdentity(c, &auth.Identity{Admin: a, Role: auth.RoleOperator, Method: auth.MethodAPIKey})
		}
		return c.SendString(adminActor(c, "mallory"))
	})
	for path, want := range map[string]string{"/as/otto": "otto", "/as/-": "mallory"} {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Errorf("%s: actor %q, want %q", path, body, want)
		}
	}
}
