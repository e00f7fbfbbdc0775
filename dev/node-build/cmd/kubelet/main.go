// Command kubelet is upstream k8s.io/kubernetes/cmd/kubelet's main, built from the Go module proxy
// through a wrapper module as dev/kube-build builds kube-apiserver. A module of its own, so that the
// node's dependencies leave the API server's build (and its cache key) alone.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // for client metric registration
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	command := app.NewKubeletCommand(context.Background())
	code := cli.Run(command)
	os.Exit(code)
}
