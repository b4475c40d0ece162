#!/usr/bin/env bash
# Fetches an Apache Kafka 4.x broker (KRaft, combined broker+controller) and
# its runtime dependencies from Maven Central into .tools/kafka/libs, for the
# test harness (src/creative_hub/testing/servers/kafka.py) and bench/.
# Also installs kcat from Debian when apt-get can (used by the interop test,
# which skips that part if kcat is missing).
#
# Needs Java 17+ and Maven (Debian: apt-get install -y openjdk-17-jre-headless maven).
# Idempotent: does nothing when the jars for this version are already there.
#   KAFKA_VERSION=4.1.1 scripts/install-kafka.sh   # another 4.x
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=${KAFKA_VERSION:-4.4.0}
libs="$root/.tools/kafka/libs"

if ! command -v kcat >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "install-kafka: installing kcat from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat >/dev/null 2>&1; } \
    || echo "install-kafka: kcat not installed (optional)"
fi

if [ -f "$libs/kafka_2.13-$version.jar" ] && [ -f "$libs/kafka-clients-$version.jar" ]; then
  echo "install-kafka: Kafka $version already in $libs"
  exit 0
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "install-kafka: '$tool' not found; install Java 17+ and Maven (apt-get install -y openjdk-17-jre-headless maven)" >&2
    exit 1
  }
done

echo "install-kafka: fetching Apache Kafka $version from Maven Central into $libs"
tmp="$libs.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
# Only the dependency plugin runs; the pom lists kafka_2.13 and an slf4j binding.
mvn -q -B -Dstyle.color=never -f "$root/scripts/kafka/pom.xml" \
  -Dkafka.version="$version" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp"
rm -rf "$libs"
mv "$tmp" "$libs"
echo "install-kafka: $(ls "$libs" | wc -l) jars in $libs"
