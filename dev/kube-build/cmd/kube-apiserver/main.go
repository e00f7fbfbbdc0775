// Command kube-apiserver builds the upstream Kubernetes API server from the Go
// module proxy; k8s.io/kubernetes cannot be `go install`ed directly because it
// requires its staging modules at v0.0.0 through local replaces.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
