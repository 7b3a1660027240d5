// Local MongoDB wire-protocol server for development and tests (mongo-java-server).
//
//   java -cp "$BW_STACK_DIR/jars/*" deploy/local/MongoLauncher.java <host> <port> [memory | h2 <file>]
//
// memory (default): data is lost when the process ends.
// h2 <file>:        data is kept in an H2 MVStore file and survives restarts, also a SIGKILL:
//                   every write command is committed to the file before it is answered (as
//                   MongoDB's j:true promises; MVStore alone auto-commits about once a second,
//                   and a SIGKILL lost the last second of acknowledged writes).
// Runs until SIGTERM/SIGINT; a shutdown hook closes the server (and the H2 file).
import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

import java.util.Set;
import java.util.concurrent.CountDownLatch;

public class MongoLauncher {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: MongoLauncher <host> <port> [memory | h2 <file>]");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String kind = args.length > 2 ? args[2] : "memory";

        MongoBackend backend;
        switch (kind) {
            case "memory":
                backend = new MemoryBackend();
                break;
            case "h2":
                if (args.length < 4) {
                    System.err.println("MongoLauncher: h2 backend needs a file name");
                    System.exit(2);
                }
                backend = new CommittingH2Backend(args[3]);
                break;
            default:
                System.err.println("MongoLauncher: unknown backend '" + kind + "' (memory|h2)");
                System.exit(2);
                return;
        }

        MongoServer server = new MongoServer(backend);
        server.bind(host, port);
        System.out.println("mongo-java-server (" + kind + ") listening on " + host + ":" + port);
        System.out.flush();

        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("mongo-java-server: shutting down");
            try {
                server.shutdown(); // closes connections and the backend (commits/closes H2)
            } catch (Throwable t) {
                t.printStackTrace();
            }
            done.countDown();
            System.out.flush();
        }, "mongo-shutdown"));
        done.await();
    }

    /** H2 backend that commits the MVStore after every write command, before the reply. */
    static final class CommittingH2Backend extends H2Backend {
        private static final Set<String> WRITES = Set.of("insert", "update", "delete",
                "findandmodify", "createindexes", "drop", "dropdatabase", "dropindexes",
                "create", "renamecollection");

        CommittingH2Backend(String file) {
            super(file);
        }

        @Override
        public Document handleCommand(Channel channel, String db, String command, Document query) {
            try {
                return super.handleCommand(channel, db, command, query);
            } finally {
                if (WRITES.contains(command.toLowerCase())) {
                    commit();
                }
            }
        }
    }
}
