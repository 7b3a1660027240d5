// Creates the topics listed in a topics.conf ("<name> <partitions> [<retention.ms>]" per line,
// '#' comments)
// in one JVM with the Kafka Admin API (same effect as TopicCommand --create --if-not-exists).
//
//   java -cp "$BW_STACK_DIR/jars/*" deploy/local/CreateTopics.java <bootstrap> <topics.conf> [replication-factor]
//
// Existing topics are left alone; one with fewer partitions than asked is reported (exit 0).
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.errors.TopicExistsException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.ExecutionException;

public class CreateTopics {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CreateTopics <bootstrap> <topics.conf> [replication-factor]");
            System.exit(2);
        }
        short rf = args.length > 2 ? Short.parseShort(args[2]) : 1;
        Map<String, Integer> wanted = new LinkedHashMap<>();
        Map<String, String> retention = new HashMap<>();
        for (String raw : Files.readAllLines(Path.of(args[1]))) {
            String line = raw.replaceAll("#.*", "").trim();
            if (line.isEmpty()) continue;
            String[] f = line.split("\\s+");
            if (f.length != 2 && f.length != 3)
                throw new IllegalArgumentException("bad line in " + args[1] + ": " + raw);
            wanted.put(f[0], Integer.parseInt(f[1]));
            if (f.length == 3) retention.put(f[0], String.valueOf(Long.parseLong(f[2])));
        }

        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        int rc = 0;
        try (Admin admin = Admin.create(p)) {
            Set<String> existing = admin.listTopics().names().get();
            List<NewTopic> create = new ArrayList<>();
            for (var e : wanted.entrySet())
                if (!existing.contains(e.getKey())) {
                    NewTopic t = new NewTopic(e.getKey(), e.getValue(), rf);
                    if (retention.containsKey(e.getKey()))
                        t.configs(Map.of("retention.ms", retention.get(e.getKey())));
                    create.add(t);
                }
            var results = admin.createTopics(create).values();
            for (NewTopic t : create) {
                try {
                    results.get(t.name()).get();
                    System.out.printf("topic %-20s created (%d partitions)%n", t.name(), t.numPartitions());
                } catch (ExecutionException ex) {
                    if (ex.getCause() instanceof TopicExistsException) continue; // raced: fine
                    System.err.printf("topic %-20s FAILED: %s%n", t.name(), ex.getCause());
                    rc = 1;
                }
            }
            Map<String, TopicDescription> desc = admin.describeTopics(wanted.keySet()).allTopicNames().get();
            for (var e : wanted.entrySet()) {
                int have = desc.get(e.getKey()).partitions().size();
                if (have != e.getValue())
                    System.err.printf("topic %-20s WARNING: has %d partitions, topics.conf says %d%n",
                            e.getKey(), have, e.getValue());
                else if (existing.contains(e.getKey()))
                    System.out.printf("topic %-20s exists (%d partitions)%n", e.getKey(), have);
            }
        }
        System.exit(rc);
    }
}
