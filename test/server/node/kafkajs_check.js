// kafkajs against a Kafka-protocol server (klog serve); run by
// test/server/test_kafkajs.py with node, from this directory so that
// require('kafkajs') finds node_modules/kafkajs (build.sh installs it).
//
//   node kafkajs_check.js roundtrip BOOTSTRAP TOPIC N
//     a producer sends N keyed records (acks -1) in batches of 50, every
//     other batch gzip-compressed; a consumer in a group reads the topic
//     from the beginning: every record once, key, value and headers as
//     sent, in send order within a partition.
//   node kafkajs_check.js admin BOOTSTRAP TOPIC
//     admin: createTopics (3 partitions), fetchTopicMetadata,
//     createPartitions (to 5), fetchTopicOffsets, deleteTopics.
//
// Prints one line "kafkajs: ok ..." and exits 0, or the reason and exits 1.
// Every step is bounded by a 120 s timer.
'use strict';
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

const [mode, bootstrap, topic, nArg] = process.argv.slice(2);
const kafka = new Kafka({
  clientId: 'klog-kafkajs-test',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  retry: { retries: 5, initialRetryTime: 100 },
  connectionTimeout: 10000,
  requestTimeout: 30000,
});

function fail(msg) {
  console.error('kafkajs: FAIL: ' + msg);
  process.exit(1);
}
setTimeout(() => fail('timed out after 120 s'), 120000).unref();

async function roundtrip(n) {
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const sent = [];
  for (let b = 0; b * 50 < n; b++) {
    const messages = [];
    for (let i = b * 50; i < Math.min(n, (b + 1) * 50); i++) {
      const m = { key: 'key-' + (i % 7), value: 'value-' + i + '-' + 'x'.repeat(i % 40), headers: { seq: String(i) } };
      messages.push(m);
      sent.push(m);
    }
    const res = await producer.send({
      topic, messages, acks: -1,
      compression: b % 2 ? CompressionTypes.GZIP : CompressionTypes.None,
    });
    for (const r of res) {
      if (r.errorCode !== 0) fail('produce error ' + JSON.stringify(r));
    }
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: 'kafkajs-group', sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: Number(message.offset), key: message.key && message.key.toString(),
                   value: message.value && message.value.toString(),
                   seq: message.headers && message.headers.seq && message.headers.seq.toString() });
        if (got.length >= n) resolve();
      },
    }).catch(reject);
  });
  await consumer.disconnect();

  if (got.length !== n) fail(`consumed ${got.length} records, sent ${n}`);
  const seen = new Set();
  const last = new Map();
  for (const g of got) {
    const i = Number(g.seq);
    if (!(i >= 0 && i < n)) fail('a record with header seq ' + g.seq);
    if (seen.has(i)) fail('record ' + i + ' consumed twice');
    seen.add(i);
    if (g.key !== sent[i].key || g.value !== sent[i].value) fail('record ' + i + ' differs: ' + JSON.stringify(g));
    const prev = last.get(g.partition);
    if (prev && (prev.offset >= g.offset || prev.i >= i)) fail(`partition ${g.partition}: record ${i} after ${prev.i}`);
    last.set(g.partition, { offset: g.offset, i });
  }
  console.log(`kafkajs: ok, ${n} records produced and consumed through ${last.size} partition(s)`);
}

async function admin() {
  const a = kafka.admin();
  await a.connect();
  const created = await a.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  if (!created) fail('createTopics returned false for a new topic');
  let md = await a.fetchTopicMetadata({ topics: [topic] });
  if (md.topics.length !== 1 || md.topics[0].partitions.length !== 3) fail('metadata after create: ' + JSON.stringify(md));
  await a.createPartitions({ topicPartitions: [{ topic, count: 5 }] });
  md = await a.fetchTopicMetadata({ topics: [topic] });
  if (md.topics[0].partitions.length !== 5) fail('metadata after createPartitions: ' + JSON.stringify(md));
  const offs = await a.fetchTopicOffsets(topic);
  if (offs.length !== 5 || offs.some((o) => o.offset !== '0' || o.low !== '0')) fail('offsets: ' + JSON.stringify(offs));
  const listed = await a.listTopics();
  if (!listed.includes(topic)) fail('listTopics: ' + JSON.stringify(listed));
  await a.deleteTopics({ topics: [topic] });
  const after = await a.listTopics();
  if (after.includes(topic)) fail('listTopics after deleteTopics: ' + JSON.stringify(after));
  await a.disconnect();
  console.log('kafkajs: ok, admin create/metadata/createPartitions/offsets/delete');
}

(async () => {
  if (mode === 'roundtrip') await roundtrip(Number(nArg));
  else if (mode === 'admin') await admin();
  else fail('usage: kafkajs_check.js roundtrip|admin BOOTSTRAP TOPIC [N]');
  process.exit(0);
})().catch((e) => fail((e && e.stack) || String(e)));
