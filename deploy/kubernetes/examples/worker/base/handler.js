// A user's task handler, mounted from a ConfigMap for this example. A real
// application builds an image FROM the Zonal image with its code in it and
// points --handler at its module (docs/deploy.md).
'use strict';
exports.handler = async (task, ctx) => {
  // task.payload is a Buffer; ctx.signal aborts when the task is cancelled or
  // the dispatcher takes the attempt back.
  const text = task.payload.toString('utf8');
  if (ctx.signal.aborted) throw new Error('cancelled');
  return text.toUpperCase();
};
