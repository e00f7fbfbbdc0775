// Command kube-scheduler is upstream k8s.io/kubernetes/cmd/kube-scheduler's main, built from the Go module proxy
// through a wrapper module as dev/kube-build builds kube-apiserver. A module of its own, so that the
// node's dependencies leave the API server's build (and its cache key) alone.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version" // for version metric registration
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	command := app.NewSchedulerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
