#!/usr/bin/env bash
# Pre-rollout hook for the kubernetes router: the new version's image into the canary
# slot's Deployment, and wait until its pods are ready.
#
# In examples/kubernetes.yaml the slots are the Deployments of
# deploy/kubernetes/deployments.yaml (checkout-blue, checkout-green), which in
# gateway-api and smi modes have Services of the same names; with Istio subsets
# (slots: [blue, green]) set DEPLOYMENT_PREFIX=checkout-. In replicas mode the
# canary Deployment has 0 pods until the router scales it: the wait then ends at once.
#
# NAMESPACE (shop), IMAGE (registry.example.com/checkout), CONTAINER (checkout) and
# TIMEOUT (300s) name what to change; the tag is $SAFESHIP_VERSION.
set -euo pipefail

: "${SAFESHIP_CANARY_SLOT:?run this as a safeship hook: SAFESHIP_CANARY_SLOT is not set}"
: "${SAFESHIP_VERSION:?run this as a safeship hook: SAFESHIP_VERSION is not set}"
namespace="${NAMESPACE:-shop}"
deployment="deployment/${DEPLOYMENT_PREFIX:-}$SAFESHIP_CANARY_SLOT"
image="${IMAGE:-registry.example.com/checkout}:$SAFESHIP_VERSION"

kubectl --namespace "$namespace" set image "$deployment" "${CONTAINER:-checkout}=$image"
kubectl --namespace "$namespace" rollout status "$deployment" --timeout "${TIMEOUT:-300s}"
