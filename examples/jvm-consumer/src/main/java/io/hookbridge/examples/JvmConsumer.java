package io.hookbridge.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads hookbridge's topics with the Apache Kafka Java client and decodes the values with
 * Apicurio Registry's Avro serde ({@code AvroKafkaDeserializer}), printing one JSON object per
 * record on stdout. Nothing here knows hookbridge's schemas: the writer schema is fetched from the
 * registry by the 4-byte id in each value.
 *
 * <p>Exit codes: 0 done, 1 a record could not be decoded (or a topic is missing, or the consumer
 * failed), 2 bad arguments, 3 {@code --timeout} passed before {@code --max-records} records
 * arrived; Ctrl-C and SIGTERM end it with the signal's status (130, 143).
 */
public final class JvmConsumer {

    static final String USAGE = String.join("\n",
            "usage: java -jar hookbridge-jvm-consumer.jar [options] TOPIC... | --pattern REGEX",
            "",
            "Prints each record as one JSON line: topic, partition, offset, timestamp, key, headers,",
            "schema_id and value (the Avro record as JSON). Values of dead-letter topics (names",
            "matching --raw-topics) are not Avro: they are printed as raw_value_base64.",
            "",
            "  --bootstrap-servers S   Kafka (env KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092)",
            "  --registry-url URL      Apicurio Registry (env SCHEMA_REGISTRY_URL, default",
            "                          http://127.0.0.1:8081/apis/ccompat/v7); a ccompat URL is",
            "                          turned into the core API URL /apis/registry/v3 the serde uses",
            "  --pattern REGEX         subscribe to every topic matching REGEX instead of TOPICs",
            "  --group ID              consumer group (default: a new random one)",
            "  --from-beginning        start at the earliest offset when the group has none",
            "  --max-records N         stop after N records",
            "  --timeout SECONDS       stop after this long; exit 3 if --max-records was not reached",
            "  --raw-topics REGEX      topics printed undecoded (default: .*dlq)",
            "  --serde-property K=V    extra Apicurio serde setting (repeatable)",
            "  --consumer-property K=V extra Kafka consumer setting (repeatable)");

    static final String DEFAULT_BOOTSTRAP = "127.0.0.1:9092";
    static final String DEFAULT_REGISTRY = "http://127.0.0.1:8081/apis/ccompat/v7";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    /** Parsed command line. */
    static final class Options {
        String bootstrap = envOr("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP);
        String registryUrl = envOr("SCHEMA_REGISTRY_URL", DEFAULT_REGISTRY);
        final List<String> topics = new ArrayList<>();
        Pattern pattern;
        String group;
        boolean fromBeginning;
        long maxRecords; // 0: no limit
        double timeoutSeconds; // 0: none
        Pattern rawTopics = Pattern.compile(".*dlq");
        final Map<String, Object> serdeProperties = new LinkedHashMap<>();
        final Map<String, Object> consumerProperties = new LinkedHashMap<>();
    }

    /** Raised for a record that cannot be decoded; the message names the record. */
    static final class DecodeException extends Exception {
        private static final long serialVersionUID = 1L;

        DecodeException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        Options opts;
        try {
            opts = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("hookbridge-jvm-consumer: " + e.getMessage());
            System.err.println(USAGE);
            return 2;
        }
        if (opts == null) { // --help
            System.out.println(USAGE);
            return 0;
        }
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        String coreApi = coreApiUrl(opts.registryUrl);
        System.err.printf("hookbridge-jvm-consumer: Kafka %s, registry core API %s%n", opts.bootstrap, coreApi);

        // The Apicurio serde in its Confluent-compatible framing: 4-byte ids that are content ids,
        // which is what Apicurio's ccompat API hands out (apicurio.ccompat.legacy-id-mode.enabled=false)
        Map<String, Object> serdeConfig = new HashMap<>();
        serdeConfig.put("apicurio.registry.url", coreApi);
        serdeConfig.put("apicurio.registry.id-handler", "io.apicurio.registry.serde.Default4ByteIdHandler");
        serdeConfig.put("apicurio.registry.use-id", "contentId");
        serdeConfig.putAll(opts.serdeProperties);

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opts.bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG,
                opts.group != null ? opts.group : "hookbridge-jvm-consumer-" + UUID.randomUUID().toString().substring(0, 8));
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, opts.fromBeginning ? "earliest" : "latest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.putAll(opts.consumerProperties);

        long deadline = opts.timeoutSeconds > 0 ? System.nanoTime() + (long) (opts.timeoutSeconds * 1e9) : Long.MAX_VALUE;
        long seen = 0;
        CountDownLatch closed = new CountDownLatch(1);
        try (AvroKafkaDeserializer<GenericRecord> avro = new AvroKafkaDeserializer<>();
             KafkaConsumer<byte[], byte[]> consumer =
                     new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            avro.configure(serdeConfig, false);
            // Ctrl-C / SIGTERM: wake the poll up and give the consumer a moment to leave its group
            Thread hook = new Thread(() -> {
                consumer.wakeup();
                try {
                    closed.await(5, TimeUnit.SECONDS);
                } catch (InterruptedException ignored) {
                    Thread.currentThread().interrupt();
                }
            });
            Runtime.getRuntime().addShutdownHook(hook);
            if (opts.pattern != null) {
                consumer.subscribe(opts.pattern);
            } else {
                // a misspelt topic would otherwise only show as client warnings, forever
                Map<String, ?> existing = consumer.listTopics(Duration.ofSeconds(30));
                List<String> missing = opts.topics.stream().filter(t -> !existing.containsKey(t)).toList();
                if (!missing.isEmpty()) {
                    System.err.println("hookbridge-jvm-consumer: no such topic: " + String.join(", ", missing));
                    return 1;
                }
                consumer.subscribe(opts.topics);
            }
            try {
                while (opts.maxRecords == 0 || seen < opts.maxRecords) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        break;
                    }
                    ConsumerRecords<byte[], byte[]> batch =
                            consumer.poll(Duration.ofNanos(Math.min(left, Duration.ofMillis(500).toNanos())));
                    Map<TopicPartition, OffsetAndMetadata> handled = new HashMap<>();
                    for (ConsumerRecord<byte[], byte[]> record : batch) {
                        out.println(JSON.writeValueAsString(toJson(record, avro, opts.rawTopics)));
                        handled.put(new TopicPartition(record.topic(), record.partition()),
                                new OffsetAndMetadata(record.offset() + 1));
                        seen++;
                        if (opts.maxRecords != 0 && seen >= opts.maxRecords) {
                            break;
                        }
                    }
                    // commit what was printed, not the rest of a batch cut short by --max-records
                    if (!handled.isEmpty()) {
                        consumer.commitSync(handled);
                    }
                }
            } catch (WakeupException e) {
                System.err.printf("hookbridge-jvm-consumer: interrupted after %d records%n", seen);
                return 130;
            } finally {
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException ignored) {
                    // already shutting down
                }
            }
        } catch (DecodeException e) {
            out.flush();
            System.err.println("hookbridge-jvm-consumer: DECODE FAILED: " + e.getMessage());
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                System.err.println("  caused by: " + c);
            }
            return 1;
        } catch (Exception e) {
            out.flush();
            System.err.println("hookbridge-jvm-consumer: failed after " + seen + " records: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                System.err.println("  caused by: " + c);
            }
            return 1;
        } finally {
            closed.countDown();
        }
        if (opts.maxRecords != 0 && seen < opts.maxRecords) {
            System.err.printf("hookbridge-jvm-consumer: TIMEOUT: %d of %d records within %s s%n",
                    seen, opts.maxRecords, opts.timeoutSeconds);
            return 3;
        }
        System.err.printf("hookbridge-jvm-consumer: %d records%n", seen);
        return 0;
    }

    /**
     * The serde talks to Apicurio's core API (/apis/registry/v3), not to the Confluent-compatible
     * one, so a ccompat URL (what the rest of hookbridge is configured with) is mapped to it.
     */
    static String coreApiUrl(String url) {
        String u = url.replaceAll("/+$", "");
        int i = u.indexOf("/apis/ccompat/");
        if (i >= 0) {
            return u.substring(0, i) + "/apis/registry/v3";
        }
        if (!u.contains("/apis/")) {
            return u + "/apis/registry/v3";
        }
        return u;
    }

    static ObjectNode toJson(ConsumerRecord<byte[], byte[]> record, AvroKafkaDeserializer<GenericRecord> avro,
                             Pattern rawTopics) throws DecodeException {
        ObjectNode line = NODES.objectNode();
        line.put("topic", record.topic());
        line.put("partition", record.partition());
        line.put("offset", record.offset());
        line.put("timestamp", record.timestamp());
        line.put("key", record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8));
        ObjectNode headers = line.putObject("headers");
        for (Header h : record.headers()) {
            if (!headers.has(h.key())) { // the first of repeated headers, as hookbridge writes each once
                headers.put(h.key(), h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8));
            }
        }
        byte[] value = record.value();
        String where = record.topic() + "/" + record.partition() + "@" + record.offset();
        if (rawTopics.matcher(record.topic()).matches()) {
            line.putNull("schema_id");
            line.putNull("value");
            line.put("raw_value_base64", value == null ? null : Base64.getEncoder().encodeToString(value));
            return line;
        }
        if (value == null) {
            line.putNull("schema_id");
            line.putNull("value");
            return line;
        }
        if (value.length < 5 || value[0] != 0) {
            throw new DecodeException(String.format(
                    "%s: value is not in the Confluent wire format (%d bytes, first byte 0x%02x, expected 0x00 and a 4-byte schema id)",
                    where, value.length, value.length == 0 ? 0 : value[0] & 0xff), null);
        }
        int schemaId = ByteBuffer.wrap(value, 1, 4).getInt();
        line.put("schema_id", schemaId);
        GenericRecord decoded;
        try {
            decoded = avro.deserialize(record.topic(), record.headers(), value);
        } catch (RuntimeException e) {
            throw new DecodeException(String.format("%s: schema id %d: %s", where, schemaId, e), e);
        }
        if (decoded == null) {
            throw new DecodeException(where + ": schema id " + schemaId + ": the deserializer returned nothing", null);
        }
        line.put("schema", decoded.getSchema().getFullName());
        line.set("value", avroToJson(decoded));
        return line;
    }

    /** An Avro value (as the generic datum reader returns it) as plain JSON: unions unwrapped. */
    static JsonNode avroToJson(Object v) {
        if (v == null) {
            return NODES.nullNode();
        }
        if (v instanceof GenericRecord) {
            GenericRecord r = (GenericRecord) v;
            ObjectNode o = NODES.objectNode();
            for (Schema.Field f : r.getSchema().getFields()) {
                o.set(f.name(), avroToJson(r.get(f.pos())));
            }
            return o;
        }
        if (v instanceof Map) {
            ObjectNode o = NODES.objectNode();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                o.set(String.valueOf(e.getKey()), avroToJson(e.getValue()));
            }
            return o;
        }
        if (v instanceof Collection) {
            ArrayNode a = NODES.arrayNode();
            for (Object item : (Collection<?>) v) {
                a.add(avroToJson(item));
            }
            return a;
        }
        if (v instanceof CharSequence || v instanceof GenericEnumSymbol) {
            return NODES.textNode(v.toString());
        }
        if (v instanceof Integer) {
            return NODES.numberNode((Integer) v);
        }
        if (v instanceof Long) {
            return NODES.numberNode((Long) v);
        }
        if (v instanceof Float) {
            return NODES.numberNode((Float) v);
        }
        if (v instanceof Double) {
            return NODES.numberNode((Double) v);
        }
        if (v instanceof Boolean) {
            return NODES.booleanNode((Boolean) v);
        }
        if (v instanceof ByteBuffer) {
            ByteBuffer b = ((ByteBuffer) v).duplicate();
            byte[] bytes = new byte[b.remaining()];
            b.get(bytes);
            return NODES.textNode(Base64.getEncoder().encodeToString(bytes));
        }
        if (v instanceof GenericFixed) {
            return NODES.textNode(Base64.getEncoder().encodeToString(((GenericFixed) v).bytes()));
        }
        if (v instanceof Instant) { // timestamp-millis, should a reader apply logical-type conversions
            return NODES.numberNode(((Instant) v).toEpochMilli());
        }
        return NODES.textNode(v.toString());
    }

    static Options parse(String[] args) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "-h":
                case "--help":
                    return null;
                case "--bootstrap-servers":
                    o.bootstrap = value(args, ++i, a);
                    break;
                case "--registry-url":
                    o.registryUrl = value(args, ++i, a);
                    break;
                case "--pattern":
                    o.pattern = regex(value(args, ++i, a), a);
                    break;
                case "--group":
                    o.group = value(args, ++i, a);
                    break;
                case "--from-beginning":
                    o.fromBeginning = true;
                    break;
                case "--max-records":
                    o.maxRecords = number(value(args, ++i, a), a);
                    if (o.maxRecords < 1) {
                        throw new IllegalArgumentException("--max-records must be at least 1");
                    }
                    break;
                case "--timeout":
                    try {
                        o.timeoutSeconds = Double.parseDouble(value(args, ++i, a));
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("--timeout needs a number of seconds");
                    }
                    if (!(o.timeoutSeconds > 0)) {
                        throw new IllegalArgumentException("--timeout must be above 0");
                    }
                    break;
                case "--raw-topics":
                    o.rawTopics = regex(value(args, ++i, a), a);
                    break;
                case "--serde-property":
                    keyValue(value(args, ++i, a), a, o.serdeProperties);
                    break;
                case "--consumer-property":
                    keyValue(value(args, ++i, a), a, o.consumerProperties);
                    break;
                default:
                    if (a.startsWith("-")) {
                        throw new IllegalArgumentException("unknown option " + a);
                    }
                    o.topics.add(a);
            }
        }
        if (o.pattern != null && !o.topics.isEmpty()) {
            throw new IllegalArgumentException("give topics or --pattern, not both");
        }
        if (o.pattern == null && o.topics.isEmpty()) {
            throw new IllegalArgumentException("no topics given (and no --pattern)");
        }
        return o;
    }

    private static String value(String[] args, int i, String option) {
        if (i >= args.length) {
            throw new IllegalArgumentException(option + " needs a value");
        }
        return args[i];
    }

    private static long number(String s, String option) {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + " needs a whole number, not " + s);
        }
    }

    private static Pattern regex(String s, String option) {
        try {
            return Pattern.compile(s);
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException(option + ": bad regular expression: " + e.getDescription());
        }
    }

    private static void keyValue(String s, String option, Map<String, Object> into) {
        int eq = s.indexOf('=');
        if (eq <= 0) {
            throw new IllegalArgumentException(option + " needs KEY=VALUE, not " + s);
        }
        into.put(s.substring(0, eq), s.substring(eq + 1));
    }

    private static String envOr(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isBlank() ? fallback : v;
    }

    private JvmConsumer() {
    }
}
